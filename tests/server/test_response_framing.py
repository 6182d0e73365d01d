"""Response framing of statuses without content (RFC 9110 §8.6, §15.3.5, §15.4.5; RFC 9112 §6.3),
from a mounted ASGI app and from the WSGI app, end to end on both loops.

Each response is followed by a second request on the same connection: a length the server made up,
or a body it let through, would show as a garbled second response.
"""

from __future__ import annotations

import json
from typing import Any, List, Tuple

import pytest

from tests.helpers import Reader, connect, get, wait_for


def _query(environ_query: str) -> Tuple[int, List[Tuple[str, str]], bytes, bool]:
    """status, headers, body and whether to send the body in a second message, from the query."""
    spec = json.loads(bytes.fromhex(environ_query).decode())
    return (
        spec["status"],
        [tuple(h) for h in spec.get("headers", [])],
        spec.get("body", "").encode(),
        spec.get("split", False),
    )


def _target(status: int, headers: Any = (), body: str = "", split: bool = False) -> str:
    spec = {"status": status, "headers": list(headers), "body": body, "split": split}
    return "?" + json.dumps(spec).encode().hex()


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    status, headers, body, split = _query(scope["query_string"].decode())
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    if split:
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    if environ["PATH_INFO"] == "/next":
        start_response("200 OK", [("Content-Length", "4")])
        return [b"next"]
    status, headers, body, split = _query(environ["QUERY_STRING"])
    start_response(f"{status} X", headers)
    if split:
        return iter([body, b""])  # streamed: the server cannot know the length up front
    return [body]


def exchange(port: int, target: str, method: str = "GET") -> Tuple[Any, Any]:
    """The response to ``target``, then to a GET /next on the same connection."""
    with connect(port) as sock:
        sock.sendall(f"{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode() + get("/next"))
        reader = Reader(sock)
        first = reader.response(head_request=method == "HEAD")
        second = reader.response()
    return first, second


@pytest.fixture(params=["asgi", "wsgi"])
def prefix(request, serve) -> Any:
    """(port, path prefix) of a server where the prefix reaches the ASGI or the WSGI app."""
    srv = serve(wsgi_app, mounts={"/asgi": asgi_app})
    return srv.port, "/asgi/x" if request.param == "asgi" else "/wsgi"


@pytest.mark.parametrize("split", [False, True], ids=["one-message", "streamed"])
def test_a_204_carries_no_length_and_no_body(prefix, split):
    port, path = prefix
    for body in ("", "oops"):
        first, second = exchange(port, path + _target(204, body=body, split=split))
        assert first.status == 204
        assert first.header(b"content-length") is None, first.raw
        assert first.header(b"transfer-encoding") is None, first.raw
        assert (second.status, second.body) == (200, b"next")  # nothing of "oops" went out


def test_a_204_drops_a_content_length_the_app_set(prefix):
    port, path = prefix
    first, second = exchange(port, path + _target(204, headers=[("Content-Length", "0")]))
    assert first.header(b"content-length") is None, first.raw
    assert second.body == b"next"


@pytest.mark.parametrize("split", [False, True], ids=["one-message", "streamed"])
def test_a_304_gets_no_invented_length(prefix, split):
    port, path = prefix
    first, second = exchange(port, path + _target(304, headers=[("ETag", '"v1"')], split=split))
    assert first.status == 304 and first.header(b"etag") == b'"v1"'
    assert first.header(b"content-length") is None, first.raw
    assert first.header(b"transfer-encoding") is None, first.raw
    assert second.body == b"next"


def test_a_304_keeps_the_length_the_app_gave_for_the_200(prefix):
    """RFC 9110 §8.6: a 304 may carry the Content-Length the 200 would have had."""
    port, path = prefix
    first, second = exchange(port, path + _target(304, headers=[("Content-Length", "1234")]))
    assert first.header(b"content-length") == b"1234"
    assert second.body == b"next"


def test_an_empty_head_response_gets_no_invented_length(prefix):
    port, path = prefix
    first, second = exchange(port, path + _target(200), method="HEAD")
    assert first.status == 200 and first.header(b"content-length") is None, first.raw
    assert second.body == b"next"


def test_an_asgi_apps_own_transfer_encoding_is_ignored(serve):
    """ASGI spec, "Response Start": a Transfer-Encoding from the app is the server's to ignore."""
    srv = serve(wsgi_app, mounts={"/asgi": asgi_app})
    headers = [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")]
    first, second = exchange(srv.port, "/asgi/x" + _target(200, headers=headers, body="hello"))
    assert (first.status, first.body) == (200, b"hello")
    assert first.header(b"content-length") == b"5" and first.header(b"transfer-encoding") is None
    first, second = exchange(srv.port, "/asgi/x" + _target(200, headers=headers, body="hello", split=True))
    assert (first.status, first.body, first.header(b"transfer-encoding")) == (200, b"hello", b"chunked")
    assert second.body == b"next"


def test_a_wsgi_apps_own_transfer_encoding_is_still_a_500(serve, caplog):
    """PEP 3333: hop-by-hop headers are the server's; a WSGI app that sets one gets a 500."""
    import logging

    caplog.set_level(logging.ERROR, logger="asyncwsgi.error")
    srv = serve(wsgi_app, mounts={"/asgi": asgi_app})
    first, _ = exchange(srv.port, "/wsgi" + _target(200, headers=[("Transfer-Encoding", "chunked")], body="x"))
    assert first.status == 500
    assert wait_for(lambda: "hop-by-hop header 'Transfer-Encoding'" in caplog.text)
