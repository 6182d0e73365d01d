"""Malformed requests: the right 4xx, a closed connection, and the server keeps serving.

Framing and smuggling cases live in test_smuggling.py; size limits in test_limits.py.

Each case is raw bytes, the status expected, and a good request pipelined right behind the bad
one, which must never be dispatched (the app would see it as a second request).
"""

from __future__ import annotations

import logging

import pytest

from tests.apps import basic
from tests.helpers import Reader, assert_refused, connect, get, request

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"

CASES = [
    ("garbage", b"\x00\x01\x02garbage\r\n\r\n", 400),
    ("no-version", b"GET /\r\n\r\n", 400),
    ("bad-version", b"GET / HTTP/2.7\r\nHost: t\r\n\r\n", 505),
    ("space-in-target", b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("invalid-host", b"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400),
    ("host-with-path", b"GET / HTTP/1.1\r\nHost: evil.com/x\r\n\r\n", 400),
    ("fragment", b"GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("header-too-large", b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
]


@pytest.mark.parametrize("raw,status", [pytest.param(raw, status, id=name) for name, raw, status in CASES])
def test_malformed_request(serve, raw, status, caplog):
    seen = []

    def app(environ, start_response):
        seen.append(environ["PATH_INFO"])
        return basic.hello(environ, start_response)

    srv = serve(app)
    caplog.set_level(logging.INFO, logger="asyncwsgi")
    assert_refused(srv.port, raw + SMUGGLED, status)
    assert "/smuggled" not in seen
    # The server still serves a good client.
    assert request(srv.port, get("/")).body == b"Hello, world!"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_bad_chunked_body_gives_400_when_app_reads(serve):
    srv = serve(basic.echo)
    raw = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"
    with connect(srv.port) as sock:
        sock.sendall(raw + SMUGGLED)
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 400
        assert reader.closed()
    assert request(srv.port, get("/")).status == 200


def test_underscore_header_cannot_spoof_dash_header(serve):
    import json

    srv = serve(basic.environ_dump)
    resp = request(srv.port, get("/", extra=b"X-Forwarded-For: 1.2.3.4\r\nX_Forwarded_For: 6.6.6.6\r\n"))
    env = json.loads(resp.body)
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


def test_eof_mid_head_closes_quietly(serve, caplog):
    srv = serve(basic.hello)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        sock.shutdown(1)
        reader = Reader(sock)
        # h11 reports the truncated head; we answer 400 and close.
        assert reader.response().status == 400
        assert reader.closed()
    assert request(srv.port, get("/")).status == 200


def test_obs_fold_is_refused_and_never_reaches_the_app(serve):
    """RFC 9112 §5.2 lets a server refuse obs-fold or unfold it; we refuse (400, close), the
    choice that can't disagree with a proxy in front. tests/server/test_smuggling.py has the variants."""
    seen = []

    def app(environ, start_response):
        seen.append(environ.get("HTTP_X_A"))
        return basic.hello(environ, start_response)

    srv = serve(app)
    assert_refused(srv.port, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  b\r\n\r\n", 400)
    assert seen == []
    assert request(srv.port, get("/")).status == 200


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
def test_garbage_after_a_complete_bodiless_request(serve, caplog, version):
    """Found by fuzz/fuzz_protocol.py: bytes h11 rejects arriving after a request without a body,
    while its app runs. The request is answered, the connection closed, nothing raised."""
    srv = serve(basic.slow)
    with connect(srv.port) as sock:
        sock.sendall(b"GET /?0.2 HTTP/" + version + b"\r\nHost: t\r\n\r\n" + b"PPPPPPGAT / H\xa8T\r\n\r\n")
        reader = Reader(sock)
        assert reader.response().body == b"slept"
        if version == b"1.1":  # on 1.1 the garbage is the next pipelined request: it gets its 400
            assert reader.response().status == 400
        assert reader.closed()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert request(srv.port, get("/?0")).status == 200
