"""Request buffering (--request-buffer-bytes): the loop reads a body whole before the app runs,
so no thread waits on a client's upload. Over real sockets, on both loops."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any, Dict, List

from asyncwsgi.server.probes import snapshot
from tests.helpers import WAIT, Reader, ServerThread, connect, get, request, slow_reader, wait_for


def _snapshot(srv: ServerThread) -> Dict[str, Any]:
    """What /stats would say now (read on the loop)."""
    server = srv.server
    assert server is not None
    return srv.on_loop(lambda: snapshot(server._ctx))


def _counting_app(calls: List[int]):
    """Counts the calls and answers with the body's length; the body is whole when it starts."""

    def app(environ, start_response):
        calls.append(1)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(str(len(body)))))])
        return [str(len(body)).encode()]

    return app


def _post(length: int, chunked: bool = False, extra: bytes = b"") -> bytes:
    if chunked:
        return b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n" + extra + b"\r\n"
    return b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % length + extra + b"\r\n"


def test_slow_uploads_take_no_thread_from_other_requests(serve):
    """Twenty clients stall halfway through their bodies; with one thread, a plain GET is still
    answered at once, and each upload runs the app once its body is whole."""
    calls: List[int] = []
    app = _counting_app(calls)
    srv = serve(app, threads=1, queue_size=0)
    stalled = []
    try:
        for _ in range(20):
            sock = connect(srv.port)
            sock.sendall(_post(1000) + b"x" * 500)
            stalled.append(sock)
        started = time.monotonic()
        resp = request(srv.port, get("/"))
        assert resp.status == 200
        assert time.monotonic() - started < WAIT / 2
        assert wait_for(lambda: _snapshot(srv)["connections"]["reading_body"] == 20)
        assert len(calls) == 1  # only the GET has run the app
        for sock in stalled:
            sock.sendall(b"y" * 500)
        for sock in stalled:
            assert Reader(sock).response().body == b"1000"
    finally:
        for sock in stalled:
            sock.close()
    assert len(calls) == 21


def test_stalled_upload_gets_408_from_the_server_and_the_app_never_runs(serve):
    calls: List[int] = []
    srv = serve(_counting_app(calls), body_timeout=0.3)
    with connect(srv.port) as sock:
        sock.sendall(_post(1000) + b"x" * 10)
        resp = Reader(sock).response()
    assert resp.status == 408
    assert calls == []
    assert srv.server.stats.timeouts["body"] == 1


def test_reset_mid_upload_never_reaches_the_app_and_frees_the_buffer(serve):
    calls: List[int] = []
    srv = serve(_counting_app(calls))
    for _ in range(5):
        sock = connect(srv.port)
        sock.sendall(_post(100_000) + b"x" * 5000)
        assert wait_for(lambda: _snapshot(srv)["request_buffers"]["bytes"] == 5000)  # what it holds
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert wait_for(lambda: _snapshot(srv)["request_buffers"]["bytes"] == 0)
    assert request(srv.port, _post(3) + b"abc").body == b"3"
    assert len(calls) == 1


def test_half_close_mid_upload_gets_400_without_running_the_app(serve):
    calls: List[int] = []
    srv = serve(_counting_app(calls))
    with connect(srv.port) as sock:
        sock.sendall(_post(1000) + b"x" * 10)
        assert wait_for(lambda: _snapshot(srv)["connections"]["reading_body"] == 1)  # being buffered
        sock.shutdown(socket.SHUT_WR)
        reader = Reader(sock)
        assert reader.response().status == 400
        assert reader.closed()
    assert calls == []


def test_bad_chunked_body_while_buffering_is_answered_400_by_the_server(serve):
    calls: List[int] = []
    srv = serve(_counting_app(calls))
    resp = request(srv.port, _post(0, chunked=True) + b"5\r\nhello\r\nzz\r\n")
    assert resp.status == 400
    assert calls == []


def test_chunked_body_over_max_body_bytes_while_buffering_is_413(serve):
    calls: List[int] = []
    srv = serve(_counting_app(calls), max_body_bytes=100)
    resp = request(srv.port, _post(0, chunked=True) + b"c8\r\n" + b"z" * 200 + b"\r\n0\r\n\r\n")
    assert resp.status == 413
    assert calls == []


def test_chunked_body_past_the_buffer_streams_to_the_app(serve):
    """Past --request-buffer-bytes, with no spool, the app starts and reads the rest as it arrives."""
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [str(len(body)).encode()]

    srv = serve(app, request_buffer_bytes=4096, request_spool_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(_post(0, chunked=True) + b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
        assert started.wait(WAIT)  # 8 KiB in, the body not ended: the app runs already
        sock.sendall(b"10\r\n" + b"b" * 16 + b"\r\n0\r\n\r\n")
        assert Reader(sock).response().body == str(0x2000 + 16).encode()


def test_content_length_over_the_buffer_streams_and_small_ones_do_not(serve):
    seen_partial: List[bool] = []

    def app(environ, start_response):
        length = int(environ["CONTENT_LENGTH"])
        # What wsgi.input holds already when the app starts: the whole body if it was buffered.
        seen_partial.append(environ["wsgi.input"]._buffered < length)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [str(len(body)).encode()]

    srv = serve(app, request_buffer_bytes=1000, request_spool_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(_post(2000) + b"a" * 100)
        assert wait_for(lambda: len(seen_partial) == 1)
        sock.sendall(b"a" * 1900)
        assert Reader(sock).response().body == b"2000"
    with connect(srv.port) as sock:
        sock.sendall(_post(900) + b"a" * 100)
        assert wait_for(lambda: _snapshot(srv)["connections"]["reading_body"] == 1)
        assert len(seen_partial) == 1  # a body under the buffer size is read before the app runs
        sock.sendall(b"a" * 800)
        assert Reader(sock).response().body == b"900"
    assert seen_partial == [True, False]


def test_expect_100_continue_streams_so_the_app_can_refuse_it_unread(serve):
    def app(environ, start_response):
        start_response("413 Content Too Large", [("Content-Length", "0")])
        return []

    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(_post(1000, extra=b"Expect: 100-continue\r\n"))
        resp = Reader(sock).response()
    assert resp.status == 413  # answered with no body sent, and no 100 Continue before it


def test_total_cap_makes_further_requests_stream(serve):
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [str(len(body)).encode()]

    srv = serve(app, request_buffer_total_bytes=1500, request_spool_bytes=0)
    with connect(srv.port) as first, connect(srv.port) as second:
        first.sendall(_post(1000) + b"a" * 999)  # holds 999 of the 1500, waiting for its last byte
        assert wait_for(lambda: _snapshot(srv)["request_buffers"]["bytes"] == 999)
        second.sendall(_post(1000) + b"b" * 600)  # 600 more would pass the cap: it streams, the app starts
        assert started.wait(WAIT)
        assert _snapshot(srv)["request_buffers"]["bytes"] == 999
        second.sendall(b"b" * 400)
        first.sendall(b"a")
        assert Reader(second).response().body == b"1000"
        assert Reader(first).response().body == b"1000"
    assert wait_for(lambda: _snapshot(srv)["request_buffers"]["bytes"] == 0)


def test_a_body_counts_against_the_total_as_it_arrives(serve):
    """An upload that stalls or resets holds only what it sent, not its declared length."""
    srv = serve(_counting_app([]), request_buffer_total_bytes=100_000)
    socks = [connect(srv.port) for _ in range(10)]
    try:
        for sock in socks:  # ten 90 KB uploads, 1 KB sent each: all ten are read by the loop
            sock.sendall(_post(90_000) + b"x" * 1000)
        assert wait_for(lambda: _snapshot(srv)["connections"]["reading_body"] == 10)
        assert _snapshot(srv)["request_buffers"]["bytes"] == 10_000
    finally:
        for sock in socks:
            sock.close()
    assert wait_for(lambda: _snapshot(srv)["request_buffers"]["bytes"] == 0)


def test_stats_report_bodies_being_read_and_the_buffer_in_use(serve):
    srv = serve(_counting_app([]), stats_path="/stats")
    with connect(srv.port) as sock:
        sock.sendall(_post(5000) + b"x")
        assert wait_for(lambda: _snapshot(srv)["connections"]["reading_body"] == 1)
        stats = json.loads(request(srv.port, get("/stats")).body)
        assert stats["connections"]["reading_body"] == 1
        assert stats["request_buffers"] == {"bytes": 1, "capacity": 64 * 1024**2}  # what has arrived


# --- responses (--response-buffer-bytes) ------------------------------------------------------


def _read_all(sock: socket.socket) -> bytes:
    reader = Reader(sock)
    return reader.response().body


def test_a_response_that_fits_the_buffer_frees_its_thread_from_aslow_reader(serve):
    """One thread; a client that reads nothing gets an 8 MiB response (more than loopback's
    socket buffers take): the app finishes, the server holds the rest, and the next client is
    answered at once."""
    chunk = b"r" * 65536
    finished = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/big":
            yield from [chunk] * 128
            finished.set()
        else:
            yield b"small"

    srv = serve(app, threads=1, queue_size=0, response_buffer_bytes=16 * 1024**2)
    with slow_reader(srv.port, "/big") as slow:
        assert finished.wait(WAIT)  # the whole response left the app's thread
        assert request(srv.port, get("/")).body == b"small"
        assert _snapshot(srv)["response_buffers"]["bytes"] == 16 * 1024**2
        assert len(_read_all(slow)) == 128 * 65536
    assert wait_for(lambda: _snapshot(srv)["response_buffers"]["bytes"] == 0)


def test_a_response_past_the_buffer_blocks_the_app_and_bounds_what_is_held(serve):
    tracker_chunk = b"d" * 65536
    produced: List[int] = []

    def app(environ, start_response):
        start_response("200 OK", [])
        for count in range(200):  # 12.5 MiB
            produced.append(count)
            yield tracker_chunk

    srv = serve(app, response_buffer_bytes=512 * 1024, response_spool_bytes=0)
    ctx = srv.server._ctx if srv.server is not None else None
    assert ctx is not None
    with slow_reader(srv.port) as slow:
        assert wait_for(lambda: _snapshot(srv)["connections"]["writing_blocked"] == 1)
        held = srv.on_loop(lambda: max(p.transport.get_write_buffer_size() for p in ctx.connections))
        assert held <= 512 * 1024 + 2 * 65536  # the grant plus at most one hand-off in flight
        assert len(produced) < 200  # the app waits for the client
        assert len(_read_all(slow)) == 200 * 65536


def test_the_total_cap_makes_further_slow_readers_block_their_threads(serve):
    finished: List[str] = []

    def app(environ, start_response):
        start_response("200 OK", [])
        yield from [b"t" * 65536] * 128  # 8 MiB: more than loopback's socket buffers take
        finished.append(environ["PATH_INFO"])

    srv = serve(
        app, response_buffer_bytes=12 * 1024**2, response_buffer_total_bytes=16 * 1024**2, response_spool_bytes=0
    )
    with slow_reader(srv.port, "/a") as first:
        assert wait_for(lambda: finished == ["/a"])
        with slow_reader(srv.port, "/b") as second:
            # No room for a second grant: this app blocks at --output-buffer-bytes.
            assert wait_for(lambda: _snapshot(srv)["connections"]["writing_blocked"] == 1)
            assert finished == ["/a"]
            assert _snapshot(srv)["response_buffers"]["bytes"] == 12 * 1024**2
            assert len(_read_all(second)) == 128 * 65536
        assert len(_read_all(first)) == 128 * 65536
    assert wait_for(lambda: finished == ["/a", "/b"])
    assert wait_for(lambda: _snapshot(srv)["response_buffers"]["bytes"] == 0)


def test_a_slow_reader_that_leaves_returns_its_grant(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"g" * 65536] * 128

    srv = serve(app, response_buffer_bytes=16 * 1024**2)
    slow = slow_reader(srv.port)
    assert wait_for(lambda: _snapshot(srv)["response_buffers"]["bytes"] == 16 * 1024**2)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    slow.close()
    assert wait_for(lambda: _snapshot(srv)["response_buffers"]["bytes"] == 0)
