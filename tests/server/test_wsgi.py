"""start_response validation and the worker-side call, without sockets."""

from __future__ import annotations

import sys
from typing import List

import pytest

from asyncwsgi.wsgi.app import ONE_HOP_BYTES, WSGICall, make_head
from asyncwsgi.wsgi.bridge import Delivery, OutputChannel


@pytest.mark.parametrize(
    "status,headers",
    [
        ("200 OK\r\nX: y", []),
        ("200", []),
        ("20 OK", []),
        ("099 Early", []),
        (b"200 OK", []),
        ("200 OK", [("X-Bad", "a\nb")]),
        ("200 OK", [("X-Bad", "a\x00b")]),
        ("200 OK", [("Bad Name", "v")]),
        ("200 OK", [("X", 1)]),
        ("200 OK", [("X", "v", "extra")]),
        ("200 OK", [("X", ["v"])]),  # unhashable: no cache lookup hides what is wrong
        ("200 OK", (("X", "v"),)),
        ("200 OK", [("Transfer-Encoding", "chunked")]),
        ("200 OK", [("Upgrade", "websocket")]),
        ("200 OK", [("Keep-Alive", "timeout=5")]),
        ("200 OK", [("Content-Length", "-1")]),
        ("200 OK", [("Content-Length", "1e3")]),
        ("200 OK", [("Content-Length", "\u0663")]),  # a non-ASCII digit
        ("200 OK", [("Content-Length", "")]),
        ("200 OK", [("Content-Length", "3"), ("Content-Length", "4")]),
    ],
)
def test_make_head_rejects(status, headers):
    with pytest.raises((ValueError, TypeError)):
        make_head(status, headers)
    with pytest.raises((ValueError, TypeError)):
        make_head(status, headers)  # a refusal is never cached as a pass


def test_make_head_checks_each_new_value_of_a_header_it_has_seen():
    make_head("200 OK", [("X-Seen", "fine")])
    with pytest.raises(ValueError, match="invalid characters"):
        make_head("200 OK", [("X-Seen", "fine\r\nSet-Cookie: x=1")])
    # Content-Length frames the body: each value is its own.
    for _ in range(2):
        assert make_head("200 OK", [("Content-Length", "5")])[1] == 5
        assert make_head("200 OK", [("Content-Length", "7")])[1] == 7
    with pytest.raises(ValueError, match="conflicting"):
        make_head("200 OK", [("Content-Length", "5"), ("Content-Length", "7")])


def test_make_head_cache_is_bounded():
    from asyncwsgi.wsgi import app

    for n in range(app._CHECKED_HEADERS_MAX + 10):
        make_head("200 OK", [("X-Id", str(n))])
    assert len(app._checked_headers) <= app._CHECKED_HEADERS_MAX
    assert make_head("200 OK", [("X-Id", "again")])[0].headers == [(b"X-Id", b"again")]


def test_make_head_accepts_and_normalises():
    for _ in range(2):  # the second time, from the cache of checked statuses and headers
        head, length = make_head(
            "404 Not Found", [("Content-Length", "3"), ("X-A", " v "), ("Connection", "keep-alive")]
        )
        assert head.status_code == 404 and head.reason == b"Not Found"
        assert head.headers == [(b"Content-Length", b"3"), (b"X-A", b"v")]  # keep-alive is the server's call
        assert length == 3
    assert make_head("200 OK", [("X-A", "v")])[1] is None
    head, _ = make_head("200 OK", [("Content-Length", "3"), ("content-length", " 3")])
    assert head.headers == [(b"Content-Length", b"3")]  # equal duplicates merge
    head, _ = make_head("200 ", [("Connection", "Close")])
    assert head.headers == [(b"Connection", b"close")] and head.reason == b""


class _Loop:
    """Just enough of a loop to run WSGICall synchronously and collect its deliveries."""

    def __init__(self) -> None:
        self.delivered: List[Delivery] = []

    def call_soon_threadsafe(self, fn, *args):
        fn(*args)

    def is_closed(self):
        return False


def _run(app, environ=None) -> List[Delivery]:
    loop = _Loop()
    channel = OutputChannel(loop, loop.delivered.append, limit=1 << 30, paused=False)
    WSGICall(app, environ or {"REQUEST_METHOD": "GET", "RAW_URI": "/"}, channel).run()
    return loop.delivered


def test_small_list_response_is_one_hand_off_with_length():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"a", b"b"]

    (only,) = _run(app)
    assert only.head is not None and (b"Content-Length", b"2") in only.head.headers
    assert (only.body, only.end, only.last) == (b"ab", True, True)


def test_large_list_response_streams():
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"x" * ONE_HOP_BYTES, b"y"]

    deliveries = _run(app)
    assert len(deliveries) == 3
    assert deliveries[0].head is not None and deliveries[1].head is None
    assert not any(name == b"Content-Length" for name, _ in deliveries[0].head.headers)
    assert deliveries[-1].last and deliveries[-1].end


def test_huge_chunk_is_sliced():
    def app(environ, start_response):
        start_response("200 OK", [])
        return iter([b"z" * (600 * 1024)])

    deliveries = _run(app)
    assert [len(d.body) for d in deliveries] == [256 * 1024, 256 * 1024, 88 * 1024, 0]


def test_exc_info_after_headers_reraises_and_aborts():
    def app(environ, start_response):
        start_response("200 OK", [])
        yield b"sent"
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Oops", [], sys.exc_info())

    deliveries = _run(app)
    assert deliveries[-1].abort and deliveries[-1].last


@pytest.mark.parametrize("fail", [False, True], ids=["ok", "app-error"])
def test_close_called_exactly_once_on_every_path(fail):
    calls = []

    class Body:
        def __iter__(self):
            if fail:
                raise RuntimeError("x")
            yield b"ok"

        def close(self):
            calls.append(1)

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    deliveries = _run(app)
    assert calls == [1]
    assert deliveries[-1].last
    assert [d.head.status_code for d in deliveries if d.head is not None] == [500 if fail else 200]


def test_base_exception_still_sends_last_delivery():
    def app(environ, start_response):
        raise SystemExit(3)

    loop = _Loop()
    channel = OutputChannel(loop, loop.delivered.append, limit=10, paused=False)
    with pytest.raises(SystemExit):
        WSGICall(app, {}, channel).run()
    assert loop.delivered[-1].last and loop.delivered[-1].abort
