"""End-to-end HTTP/1.1 behaviour over real sockets, checked byte by byte."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pytest

from tests.apps import basic
from tests.helpers import WAIT, Reader, connect, get, request


def test_hello_bytes_on_the_wire(serve):
    srv = serve(basic.hello)
    resp = request(srv.port, get("/"))
    assert resp.status == 200
    assert resp.body == b"Hello, world!"
    # A list body gets a Content-Length from the server, never chunked framing.
    assert resp.header(b"content-length") == b"13"
    assert resp.header(b"transfer-encoding") is None
    assert resp.header(b"server") == b"asyncwsgi"
    assert re.fullmatch(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", resp.header(b"date") or b"")
    assert resp.raw.startswith(b"HTTP/1.1 200 OK\r\n")


def test_httpx_keep_alive_reuses_one_connection(serve):
    srv = serve(basic.hello)
    with httpx.Client(base_url=srv.url, timeout=WAIT) as client:
        ports = set()
        for _ in range(5):
            r = client.get("/")
            assert r.text == "Hello, world!"
        # Server side: exactly one connection stayed open across the five requests.
        ports.add(srv.on_loop(lambda: srv.server.connections))
    assert ports == {1}


def test_raw_keep_alive_serves_sequential_requests(serve):
    srv = serve(basic.path_echo)
    with connect(srv.port) as sock:
        reader = Reader(sock)
        for i in range(3):
            sock.sendall(get(f"/n{i}"))
            assert reader.response().body == f"GET /n{i} ?".encode()


def test_pipelined_requests_answered_in_order(serve):
    srv = serve(basic.path_echo)
    with connect(srv.port) as sock:
        sock.sendall(b"".join(get(f"/p{i}?q={i}") for i in range(10)))
        reader = Reader(sock)
        bodies = [reader.response().body for _ in range(10)]
    assert bodies == [f"GET /p{i} ?q={i}".encode() for i in range(10)]


def test_pipelined_behind_slow_request_waits_for_it(serve):
    srv = serve(basic.slow, threads=4)
    with connect(srv.port) as sock:
        sock.sendall(get("/?0.3") + get("/?0"))
        reader = Reader(sock)
        first = reader.response()
        second = reader.response()
    assert first.body == second.body == b"slept"


def test_chunked_request_body_is_decoded(serve):
    srv = serve(basic.echo)
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    resp = request(srv.port, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert resp.body == b"hello world"


def test_generator_response_is_chunked_on_http11(serve):
    srv = serve(basic.stream)
    resp = request(srv.port, get("/"))
    assert resp.header(b"transfer-encoding") == b"chunked"
    assert resp.body == b"one,two,three"
    # The empty chunk the app yielded must not become a 0-size (terminating) chunk.
    assert resp.raw.endswith(b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n")


def test_generator_response_on_http10_is_close_delimited(serve):
    srv = serve(basic.stream)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reader = Reader(sock)
        resp = reader.response()
        assert resp.header(b"transfer-encoding") is None
        assert resp.header(b"content-length") is None
        assert resp.body == b"one,two,three"
        assert reader.eof


def test_http10_request_with_known_length(serve):
    srv = serve(basic.hello)
    with connect(srv.port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reader = Reader(sock)
        resp = reader.response()
        assert resp.version == b"HTTP/1.1"
        assert resp.body == b"Hello, world!"
        assert reader.closed()  # HTTP/1.0 without keep-alive: server closes


def http10(path: str, extra: bytes = b"Connection: keep-alive\r\n", method: bytes = b"GET") -> bytes:
    return method + b" " + path.encode() + b" HTTP/1.0\r\n" + extra + b"\r\n"


def test_http10_keep_alive_reuses_the_connection(serve):
    # ApacheBench -k and many health checkers speak HTTP/1.0 with "Connection: keep-alive".
    srv = serve(basic.path_echo)
    with connect(srv.port) as sock:
        reader = Reader(sock)
        for i in range(3):  # one at a time: each answer must come without the connection closing
            sock.sendall(http10(f"/{i}"))
            resp = reader.response()
            assert resp.body == f"GET /{i} ?".encode()
            assert resp.header(b"connection") == b"keep-alive"  # an HTTP/1.0 client assumes close
            assert resp.header(b"content-length") == str(len(resp.body)).encode()
        sock.sendall(http10("/last", b"Connection: Keep-Alive, close\r\n"))  # close wins
        resp = reader.response()
        assert resp.body == b"GET /last ?" and resp.header(b"connection") == b"close"
        assert reader.closed()


def test_http10_keep_alive_pipelined_with_bodies_and_head(serve):
    srv = serve(basic.echo)
    with connect(srv.port) as sock:
        sock.sendall(
            http10("/a", b"Connection: keep-alive\r\nContent-Length: 5\r\n", b"POST")
            + b"hello"
            + http10("/b", method=b"HEAD")
            + http10("/c", b"Connection: keep-alive\r\nContent-Length: 3\r\n", b"POST")
            + b"abc"
            + http10("/d", b"")
        )
        reader = Reader(sock)
        assert reader.response().body == b"hello"
        head = reader.response(head_request=True)
        assert head.header(b"connection") == b"keep-alive" and head.body == b""
        assert reader.response().body == b"abc"
        last = reader.response()  # no keep-alive asked: the connection ends with it
        assert last.header(b"connection") == b"close"
        assert reader.closed()


def test_http10_keep_alive_with_a_body_of_unknown_length_closes(serve):
    srv = serve(basic.stream)
    with connect(srv.port) as sock:
        sock.sendall(http10("/") + get("/never"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.header(b"connection") == b"close"  # the body ends where the connection does
        assert resp.body == b"one,two,three"
        assert reader.eof


def test_head_sends_headers_but_no_body(serve):
    srv = serve(basic.hello)
    with connect(srv.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/"))
        reader = Reader(sock)
        head = reader.response(head_request=True)
        assert head.header(b"content-length") == b"13"  # same headers as GET
        assert head.body == b""
        # The next response starts right after the head's blank line: no body bytes leaked.
        assert reader.response().body == b"Hello, world!"


def test_head_on_streamed_response(serve):
    srv = serve(basic.stream)
    with connect(srv.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/"))
        reader = Reader(sock)
        head = reader.response(head_request=True)
        assert head.header(b"transfer-encoding") == b"chunked"
        assert reader.response().body == b"one,two,three"


def test_204_has_no_body_and_no_length(serve):
    srv = serve(basic.no_body)
    resp = request(srv.port, get("/"))
    assert resp.status == 204
    assert resp.header(b"content-length") is None
    assert resp.raw.endswith(b"\r\n\r\n")


def test_client_connection_close_is_honoured(serve):
    srv = serve(basic.hello)
    with connect(srv.port) as sock:
        sock.sendall(get("/", extra=b"Connection: close\r\n"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.header(b"connection") == b"close"
        assert reader.closed()


def test_app_connection_close_is_honoured(serve):
    srv = serve(basic.app_closes)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        assert reader.response().header(b"connection") == b"close"
        assert reader.closed()


def test_expect_100_continue_sent_when_app_reads(serve):
    srv = serve(basic.echo)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        reader = Reader(sock)
        interim = reader.response()
        assert (interim.status, interim.raw) == (100, b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        final = reader.response()
        assert final.status == 200
        assert final.body == b"hello"
        # The connection stays usable.
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok")
        assert reader.response().body == b"ok"


def test_expect_100_continue_not_sent_when_app_does_not_read(serve):
    srv = serve(basic.ignores_body)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        reader = Reader(sock)
        final = reader.response()
        assert final.status == 200  # no 100 before it
        assert final.body == b"ignored"
        # The body was never invited, so the connection cannot be reused.
        assert final.header(b"connection") == b"close"
        assert reader.closed()


def test_unread_body_is_drained_and_connection_reused(serve):
    srv = serve(basic.ignores_body)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789" + get("/"))
        reader = Reader(sock)
        assert reader.response().body == b"ignored"
        assert reader.response().body == b"ignored"


def test_absolute_form_target_is_split(serve):
    srv = serve(basic.environ_dump)
    resp = request(
        srv.port, b"GET http://example.com:8080/a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
    )
    env = json.loads(resp.body)
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=%2F"


def test_options_asterisk(serve):
    srv = serve(basic.path_echo)
    resp = request(srv.port, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
    assert resp.body == b"OPTIONS * ?"


def test_keep_alive_timeout_closes_idle_connection(serve):
    srv = serve(basic.hello, keep_alive=0.3)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        assert reader.response().status == 200
        started = time.monotonic()
        assert reader.closed(timeout=WAIT)
        assert time.monotonic() - started < WAIT


def test_keep_alive_zero_disables_reuse(serve):
    srv = serve(basic.hello, keep_alive=0)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        assert reader.response().header(b"connection") == b"close"
        assert reader.closed()


def test_no_server_header_when_disabled(serve):
    srv = serve(basic.hello, server_header=False)
    assert b"server" not in request(srv.port, get("/")).header_names


def test_large_pipelined_burst_is_bounded_and_complete(serve):
    """A client pipelines far more than the pipeline buffer; all answers arrive, in order."""
    srv = serve(basic.path_echo, max_requests_per_connection=0)
    count = 2000
    with connect(srv.port) as sock:
        reader = Reader(sock)
        payload = b"".join(get(f"/{i}") for i in range(count))
        sock.setblocking(True)
        import threading

        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        for i in range(count):
            assert reader.response().body == f"GET /{i} ?".encode()
        sender.join(WAIT)


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
def test_response_version_is_http11(serve, version):
    srv = serve(basic.hello)
    resp = request(srv.port, b"GET / HTTP/" + version + b"\r\nHost: t\r\n\r\n")
    assert resp.version == b"HTTP/1.1"


def test_half_closed_client_still_gets_response(serve):
    srv = serve(basic.slow)
    with connect(srv.port) as sock:
        sock.sendall(get("/?0.1"))
        sock.shutdown(socket.SHUT_WR)
        reader = Reader(sock)
        assert reader.response().body == b"slept"
        assert reader.closed()


def test_max_requests_per_connection_closes_after_the_last(serve):
    srv = serve(basic.path_echo, max_requests_per_connection=3)
    with connect(srv.port) as sock:
        sock.sendall(b"".join(get(f"/{i}") for i in range(5)))
        reader = Reader(sock)
        responses = [reader.response() for _ in range(3)]
        assert [r.header(b"connection") for r in responses] == [None, None, b"close"]
        assert reader.closed()  # the 4th and 5th requests are never answered on this connection


def test_half_close_after_pipelined_requests_ends_once_all_are_answered(serve):
    """The client sends two requests and shuts down its side: both are answered, then the server
    closes at once instead of sitting out --keep-alive (30 s here) on a finished connection."""
    srv = serve(basic.hello, keep_alive=30)
    with connect(srv.port) as sock:
        sock.sendall(get("/one") + get("/two"))
        sock.shutdown(socket.SHUT_WR)
        reader = Reader(sock)
        assert reader.response().status == 200
        assert reader.response().status == 200
        assert reader.closed(timeout=10)
