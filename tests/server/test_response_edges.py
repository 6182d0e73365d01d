"""Responses at their edges, end to end: the app's framing mistakes, HEAD, Date and Server, Upgrade,
absolute-form targets, and unread bodies (issue "Correctness II")."""

from __future__ import annotations

import json
import logging
import socket
import threading

import pytest

from tests.apps import basic
from tests.helpers import WAIT, Reader, connect, get, request, wait_for


def _errors(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "asyncwsgi.error" and r.levelno >= logging.ERROR]


def _length_app(chunks, length="5", listed=False):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", length)])
        if listed:
            return list(chunks)
        return iter(chunks)

    return app


@pytest.mark.parametrize(
    "chunks",
    [
        pytest.param([b"0123456789abcdefghijklmn"], id="first-chunk-24-bytes"),
        pytest.param([b"012", b"3456789"], id="012-then-3456789"),
        pytest.param([b"01234", b"5"], id="exact-then-one-more"),
    ],
)
def test_bytes_past_content_length_are_cut_and_the_connection_closes(serve, caplog, chunks):
    """PEP 3333: no more than Content-Length bytes; the client gets exactly the declared body."""
    srv = serve(_length_app(chunks), access_log=True)
    caplog.set_level(logging.INFO, logger="asyncwsgi")
    with connect(srv.port) as sock:
        sock.sendall(get("/") + get("/after"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 200 and resp.body == b"".join(chunks)[:5]
        assert reader.closed()  # the pipelined request is not answered on this connection
    assert wait_for(lambda: any(r.name == "asyncwsgi.access" for r in caplog.records))
    line = next(r.getMessage() for r in caplog.records if r.name == "asyncwsgi.access")
    assert '" 200 5 ' in line  # what was really sent
    assert any("more than its Content-Length" in m for m in _errors(caplog))
    assert request(srv.port, get("/")).status == 200


@pytest.mark.parametrize("chunks", [pytest.param([b"abc"], id="shorter"), pytest.param([b"abcdefgh"], id="longer")])
def test_a_whole_body_that_contradicts_its_content_length_is_a_500(serve, caplog, chunks):
    """Known before anything is sent: answer 500 and log why, rather than a broken response."""
    srv = serve(_length_app(chunks, listed=True))
    with connect(srv.port) as sock:
        sock.sendall(get("/") + get("/"))
        reader = Reader(sock)
        first = reader.response()
        assert first.status == 500 and first.body == b"Internal Server Error\n"
        assert reader.response().status == 500  # the connection was still usable
    assert any("declared Content-Length 5" in m for m in _errors(caplog))


def _streaming_flask_like(environ, start_response):
    """Like Werkzeug: a streamed GET, and an empty body for HEAD."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if environ["REQUEST_METHOD"] == "HEAD":
        return []
    return (b"x" * 1000 for _ in range(20))


def test_head_of_a_streamed_response_has_no_made_up_length(serve):
    """RFC 9110 §9.3.2: HEAD gets what GET would; Content-Length: 0 would be a lie."""
    srv = serve(_streaming_flask_like)
    with connect(srv.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/"))
        reader = Reader(sock)
        head = reader.response(head_request=True)
        assert head.status == 200 and head.header(b"content-length") is None
        assert head.header(b"transfer-encoding") == b"chunked"  # what the GET gets
        full = reader.response()
        assert len(full.body) == 20000 and full.header(b"transfer-encoding") == b"chunked"


def _own_date_and_server(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Length", "2"), ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Server", "mine")],
    )
    return [b"ok"]


def test_the_apps_date_and_server_are_not_doubled(serve):
    srv = serve(_own_date_and_server)
    resp = request(srv.port, get("/"))
    names = [name.lower() for name in resp.header_names]
    assert names.count(b"date") == 1 and names.count(b"server") == 1
    assert resp.header(b"date") == b"Mon, 01 Jan 2024 00:00:00 GMT" and resp.header(b"server") == b"mine"
    plain = request(serve(basic.hello).port, get("/"))
    assert [n.lower() for n in plain.header_names].count(b"date") == 1


def test_absolute_form_target_replaces_host(serve):
    """RFC 9112 §3.2.2: the target's authority is the host; the Host header is ignored."""
    srv = serve(basic.environ_dump)
    resp = request(srv.port, b"GET http://hypnotoad.org:8080?hail=all HTTP/1.1\r\nHost: other.example\r\n\r\n")
    environ = json.loads(resp.body)
    assert environ["HTTP_HOST"] == "hypnotoad.org:8080"
    assert environ["PATH_INFO"] == "/" and environ["QUERY_STRING"] == "hail=all"


@pytest.mark.parametrize(
    "upgrade",
    [
        pytest.param(b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n", id="h2c"),
        pytest.param(
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            id="websocket",
        ),
    ],
)
def test_an_ignored_upgrade_keeps_the_connection(serve, upgrade):
    """RFC 9110 §7.8: we ignore Upgrade, so the connection goes on and a pipelined request is served."""
    srv = serve(basic.hello)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n" + upgrade + b"\r\n" + get("/next"))
        reader = Reader(sock)
        first = reader.response()
        assert first.status == 200 and first.header(b"connection") is None
        assert reader.response().status == 200


def _refuse_without_reading(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]


@pytest.mark.slow
def test_a_large_unread_body_still_gets_its_response_without_a_reset(serve):
    """The app answers without reading 30 MB: the response says close, and the server keeps
    reading (discarding) after a half-close, so the client reads it instead of a reset."""
    srv = serve(_refuse_without_reading, request_spool_bytes=0)  # (spooled, it would be read whole)
    size = 30 * 1024 * 1024
    for _ in range(5):
        with connect(srv.port) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"PUT /missing HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            failure: list = []

            def send_body(sock=sock, failure=failure):
                piece = b"x" * 65536
                try:
                    for _ in range(size // len(piece)):
                        sock.sendall(piece)
                except OSError as exc:
                    failure.append(exc)

            sender = threading.Thread(target=send_body)
            sender.start()
            reader = Reader(sock)
            resp = reader.response()
            assert resp.status == 404 and resp.body == b"not found\n"
            assert resp.header(b"connection") == b"close"
            sender.join(WAIT)
            assert not sender.is_alive()
            assert reader.closed()


def test_access_log_durations_are_finer_than_the_loop_clock(serve, caplog):
    """uvloop's clock counts whole milliseconds; durations must not (%(D)s is microseconds)."""
    srv = serve(basic.hello, access_log=True, access_log_format="%(D)s")
    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    with connect(srv.port) as sock:
        sock.sendall(get("/") * 20)
        reader = Reader(sock)
        for _ in range(20):
            assert reader.response().status == 200
    assert wait_for(lambda: len([r for r in caplog.records if r.name == "asyncwsgi.access"]) == 20)
    micros = [int(r.getMessage()) for r in caplog.records if r.name == "asyncwsgi.access"]
    assert any(value % 1000 for value in micros), micros
