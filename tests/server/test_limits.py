"""Every size and count limit: the right status, nothing else read, and the server keeps serving."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from tests.apps import basic
from tests.helpers import WAIT, Reader, assert_refused, connect, get, request


def _refused(port: int, raw: bytes, status: int) -> None:
    assert_refused(port, raw, status)
    assert request(port, get("/")).status == 200  # and the server still serves


def test_request_line_too_long_complete(serve):
    srv = serve(basic.hello, max_request_line_bytes=100)
    _refused(srv.port, get("/" + "a" * 100), 414)
    assert request(srv.port, get("/" + "a" * 50)).status == 200


def test_request_line_too_long_before_head_completes(serve):
    """414 as soon as the line is too long, without waiting for (or buffering) the rest."""
    srv = serve(basic.hello, max_request_line_bytes=100)
    _refused(srv.port, b"GET /" + b"a" * 500, 414)


def test_single_header_too_long(serve):
    srv = serve(basic.hello, max_header_bytes=100)
    _refused(srv.port, get("/", extra=b"X-Long: " + b"v" * 100 + b"\r\n"), 431)
    assert request(srv.port, get("/", extra=b"X-Ok: " + b"v" * 50 + b"\r\n")).status == 200


def test_too_many_headers(serve):
    srv = serve(basic.hello, max_header_count=10)
    extra = b"".join(b"X-H%d: v\r\n" % i for i in range(10))  # plus Host: 11 fields
    _refused(srv.port, get("/", extra=extra), 431)


def test_head_too_large(serve):
    srv = serve(basic.hello, max_head_bytes=2048, max_header_bytes=8192)
    _refused(srv.port, get("/", extra=b"X-A: " + b"v" * 3000 + b"\r\n"), 431)


def test_content_length_over_limit_is_413_without_reading_body(serve):
    ran = []

    def app(environ, start_response):
        ran.append(environ["REQUEST_METHOD"])
        return basic.echo(environ, start_response)

    srv = serve(app, max_body_bytes=1000)
    _refused(srv.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413)
    assert "POST" not in ran
    # With Expect: 100-continue the body is never invited either.
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        resp = Reader(sock).response()
        assert resp.status == 413
    assert "POST" not in ran
    assert request(srv.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000).status == 200


def test_chunked_body_over_limit_raises_in_app_and_closes(serve):
    seen = []

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read()
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise
        start_response("200 OK", [])
        return [b"read it all?"]

    srv = serve(app, max_body_bytes=1000, request_buffer_bytes=0)
    chunk = b"%x\r\n%s\r\n" % (600, b"y" * 600)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk)
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 413
        assert resp.header(b"connection") == b"close"
        assert reader.closed()
    assert seen == ["RequestBodyTooLarge"]


def test_trailers_over_limits(serve):
    srv = serve(basic.echo_sized_reads, max_header_count=3)
    trailers = b"".join(b"T%d: v\r\n" % i for i in range(5))
    with connect(srv.port) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + trailers + b"\r\n"
        )
        reader = Reader(sock)
        assert reader.response().status == 431
        assert reader.closed()
    with connect(srv.port) as sock:  # within the limit, trailers are fine
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n")
        assert Reader(sock).response().body == b"abc"


def test_max_connections_stops_accepting(serve):
    """At the limit the server does not accept: a new client waits in the backlog, then is served."""
    srv = serve(basic.hello, max_connections=3)
    ctx = srv.server._ctx
    held = [connect(srv.port) for _ in range(3)]
    try:
        for sock in held:  # make sure all three are accepted and live
            sock.sendall(get("/"))
            assert Reader(sock).response().status == 200
        waiting = connect(srv.port)  # the kernel completes the handshake (backlog)...
        waiting.sendall(get("/"))
        waiting.settimeout(0.5)
        with pytest.raises(socket.timeout):
            waiting.recv(100)  # ...but nobody accepted it, so nobody answers
        assert srv.on_loop(lambda: ctx.gate.open) == 3
        held.pop().close()  # room for one
        waiting.settimeout(WAIT)
        assert Reader(waiting).response().status == 200
        waiting.close()
    finally:
        for sock in held:
            sock.close()


def test_max_connections_per_ip(serve):
    srv = serve(basic.hello, max_connections_per_ip=2)
    first, second = connect(srv.port), connect(srv.port)
    try:
        for sock in (first, second):
            sock.sendall(get("/"))
            assert Reader(sock).response().status == 200
        with connect(srv.port) as third:
            resp = Reader(third).response()
            assert resp.status == 503
            assert resp.header(b"retry-after") == b"1"
        first.close()
        deadline = time.monotonic() + WAIT
        while srv.on_loop(lambda: srv.server._ctx.gate.open) > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert request(srv.port, get("/")).status == 200
    finally:
        first.close()
        second.close()


def test_reset_right_after_connect_does_not_leak_a_slot(serve):
    srv = serve(basic.hello, max_connections=5)
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", srv.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    # Accepts are FIFO: once a later connection is answered, the reset ones have been taken.
    assert request(srv.port, get("/")).status == 200
    deadline = time.monotonic() + WAIT
    while srv.on_loop(lambda: srv.server._ctx.gate.open) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.on_loop(lambda: srv.server._ctx.gate.open) == 0
    results = []
    threads = [threading.Thread(target=lambda: results.append(request(srv.port, get("/")).status)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert results == [200] * 5
