"""Spooling to disk: a request body past the memory buffer is written to a spool file before the
app runs; a response its client is slow to read goes on into one, and the app's thread is free.
Over real sockets, on both loops."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from typing import Any, Dict, List

from asyncwsgi.server.probes import snapshot
from tests.helpers import WAIT, Reader, ServerThread, connect, get, request, slow_reader, tls_files, wait_for

MiB = 1024 * 1024


def _spool(srv: ServerThread) -> Dict[str, Any]:
    """The stats' spool figures now (read on the loop)."""
    server = srv.server
    assert server is not None
    return srv.on_loop(lambda: snapshot(server._ctx))["spool"]


def _stats(srv: ServerThread) -> Dict[str, Any]:
    server = srv.server
    assert server is not None
    return srv.on_loop(lambda: snapshot(server._ctx))


def _pattern(size: int) -> bytes:
    """Bytes whose every 8-byte block says where it is, so a reordered piece shows."""
    return b"".join(struct.pack(">Q", i) for i in range(size // 8))


def _post(length: int, chunked: bool = False, extra: bytes = b"") -> bytes:
    if chunked:
        return b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n" + extra + b"\r\n"
    return b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % length + extra + b"\r\n"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fds_after_a_request(srv: ServerThread) -> int:
    """Descriptors open once the server has served one connection (uvloop opens /dev/null at
    its first accept, kept for running out of descriptors)."""
    request(srv.port, get("/"))
    return _open_fds()


# --- request bodies -----------------------------------------------------------------------------


def _recording_app(started: threading.Event, bodies: List[bytes]):
    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            start_response("200 OK", [])
            return [b"not an upload"]
        started.set()
        body = environ["wsgi.input"].read()
        bodies.append(body)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(len(body)).encode()]

    return app


def test_a_body_past_the_memory_buffer_is_spooled_before_the_app_runs(serve, tmp_path):
    """A 3 MiB upload, sent in two halves: the app does not start at the first half (the loop
    writes it to disk, not memory), and reads the whole body, in order, once it is in."""
    started = threading.Event()
    bodies: List[bytes] = []
    srv = serve(_recording_app(started, bodies), spool_dir=str(tmp_path))
    body = _pattern(3 * MiB)
    with connect(srv.port) as sock:
        sock.sendall(_post(len(body)) + body[: len(body) // 2])
        assert wait_for(lambda: _spool(srv)["bytes"] >= MiB)
        spool = _spool(srv)
        assert spool["files"] == 1
        assert os.listdir(tmp_path) == []  # unlinked from the start
        assert _stats(srv)["request_buffers"]["bytes"] == 0  # its Content-Length is past the memory buffer
        assert _stats(srv)["connections"]["reading_body"] == 1
        assert not started.is_set()
        sock.sendall(body[len(body) // 2 :])
        assert Reader(sock).response().body == str(len(body)).encode()
    assert bodies == [body]
    assert wait_for(lambda: _spool(srv)["files"] == 0)
    assert _spool(srv)["bytes"] == 0 and _spool(srv)["bytes_total"] == len(body)


def test_a_chunked_body_moves_from_memory_to_disk_when_it_outgrows_the_buffer(serve):
    started = threading.Event()
    bodies: List[bytes] = []
    srv = serve(_recording_app(started, bodies), request_buffer_bytes=64 * 1024)
    body = _pattern(512 * 1024)
    pieces = [body[i : i + 50_000] for i in range(0, len(body), 50_000)]
    chunks = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for piece in pieces)
    with connect(srv.port) as sock:
        sock.sendall(_post(0, chunked=True) + chunks)
        assert wait_for(lambda: _spool(srv)["bytes"] == len(body))
        assert _stats(srv)["request_buffers"]["bytes"] == 0  # moved out of memory
        assert not started.is_set()  # the body has not ended
        sock.sendall(b"0\r\n\r\n")
        assert Reader(sock).response().body == str(len(body)).encode()
    assert bodies == [body]


def test_past_the_spool_cap_the_app_starts_and_reads_on_across_the_join(serve):
    """request_spool_bytes=100 KB: the first 100 KB go to disk, then the app runs and reads the
    rest as it arrives; lines that straddle the file's end come whole."""
    lines: List[bytes] = []
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        for line in environ["wsgi.input"]:
            lines.append(line)
        start_response("200 OK", [])
        return [b"%d" % len(lines)]

    line = b"x" * 999 + b"\n"
    body = line * 300  # 300 KB
    srv = serve(app, request_buffer_bytes=10_000, request_spool_bytes=100_000)
    with connect(srv.port) as sock:
        sock.sendall(_post(len(body)) + body[:150_000])
        assert started.wait(WAIT)  # past the cap: the app runs before the body is in
        sock.sendall(body[150_000:])
        assert Reader(sock).response().body == b"300"
    assert lines == [line] * 300


def test_a_slow_spooled_upload_takes_no_thread(serve):
    """One thread; ten 2 MiB uploads stall halfway: a GET is answered at once."""
    started = threading.Event()
    bodies: List[bytes] = []
    srv = serve(_recording_app(started, bodies), threads=1, queue_size=0)
    socks = []
    try:
        for _ in range(10):
            sock = connect(srv.port)
            sock.sendall(_post(2 * MiB) + b"u" * MiB)
            socks.append(sock)
        assert wait_for(lambda: _spool(srv)["files"] == 10)
        assert request(srv.port, get("/")).status == 200
        for sock in socks:
            sock.sendall(b"u" * MiB)
            assert Reader(sock).response().body == str(2 * MiB).encode()
    finally:
        for sock in socks:
            sock.close()
    assert wait_for(lambda: _spool(srv)["files"] == 0 and _spool(srv)["bytes"] == 0)


def test_a_stalled_spooled_upload_gets_408_and_its_file_is_closed(serve):
    started = threading.Event()
    srv = serve(_recording_app(started, []), body_timeout=0.3)
    before = _fds_after_a_request(srv)
    with connect(srv.port) as sock:
        sock.sendall(_post(4 * MiB) + b"s" * (2 * MiB))
        resp = Reader(sock).response()
    assert resp.status == 408
    assert not started.is_set()
    assert _spool(srv)["files_total"] == 1
    assert wait_for(lambda: _spool(srv)["files"] == 0 and _spool(srv)["bytes"] == 0)
    assert wait_for(lambda: _open_fds() <= before)


def test_a_reset_mid_spool_frees_the_file(serve):
    started = threading.Event()
    srv = serve(_recording_app(started, []))
    before = _fds_after_a_request(srv)
    sock = connect(srv.port)
    sock.sendall(_post(4 * MiB) + b"r" * (2 * MiB))
    assert wait_for(lambda: _spool(srv)["files"] == 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert wait_for(lambda: _spool(srv)["files"] == 0 and _spool(srv)["bytes"] == 0)
    assert wait_for(lambda: _open_fds() <= before)
    assert not started.is_set()


def test_a_chunked_body_past_max_body_bytes_while_spooling_is_413(serve):
    started = threading.Event()
    srv = serve(_recording_app(started, []), request_buffer_bytes=1000, max_body_bytes=300_000)
    with connect(srv.port) as sock:
        sock.sendall(_post(0, chunked=True) + (b"10000\r\n" + b"m" * 0x10000 + b"\r\n") * 5)
        resp = Reader(sock).response()
    assert resp.status == 413
    assert not started.is_set()
    assert wait_for(lambda: _spool(srv)["files"] == 0)


def test_expect_100_continue_is_never_spooled(serve):
    """The app may refuse it unread: no 100 Continue, no body read, nothing spooled."""

    def app(environ, start_response):
        start_response("413 Content Too Large", [("Content-Length", "0")])
        return []

    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(_post(5 * MiB, extra=b"Expect: 100-continue\r\n"))
        resp = Reader(sock).response()
    assert resp.status == 413
    assert _spool(srv)["files_total"] == 0


def test_past_the_disk_cap_a_body_streams_to_the_app(serve):
    started = threading.Event()
    bodies: List[bytes] = []
    srv = serve(_recording_app(started, bodies), spool_total_bytes=2 * MiB)
    with connect(srv.port) as first, connect(srv.port) as second:
        first.sendall(_post(3 * MiB) + b"a" * (2 * MiB - 10))  # holds nearly all the disk's cap
        assert wait_for(lambda: _spool(srv)["bytes"] == 2 * MiB - 10)
        second.sendall(_post(3 * MiB) + b"b" * MiB)  # no room on disk: it streams, its app starts
        assert started.wait(WAIT)
        assert _spool(srv)["full"] >= 1
        second.sendall(b"b" * (2 * MiB))
        assert Reader(second).response().body == str(3 * MiB).encode()
        first.sendall(b"a" * (MiB + 10))  # (its own spool is full too: it streams the rest)
        assert Reader(first).response().body == str(3 * MiB).encode()
    assert sorted(bodies) == [b"a" * 3 * MiB, b"b" * 3 * MiB]
    assert wait_for(lambda: _spool(srv)["bytes"] == 0)


def test_request_buffer_bytes_0_still_streams_every_body(serve):
    started = threading.Event()
    srv = serve(_recording_app(started, []), request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(_post(2 * MiB) + b"z" * 1000)
        assert started.wait(WAIT)
        sock.sendall(b"z" * (2 * MiB - 1000))
        assert Reader(sock).response().body == str(2 * MiB).encode()
    assert _spool(srv)["files_total"] == 0


# --- responses ----------------------------------------------------------------------------------


def _big_app(body: bytes, finished: threading.Event, length: bool = False, piece: int = 65536):
    def app(environ, start_response):
        if environ["PATH_INFO"] != "/big":
            start_response("200 OK", [("Content-Length", "5")])
            return [b"small"]
        headers = [("Content-Length", str(len(body)))] if length else []
        start_response("200 OK", headers)
        return _pieces(body, finished, piece)

    return app


def _pieces(body: bytes, finished: threading.Event, piece: int):
    for start in range(0, len(body), piece):
        yield body[start : start + piece]
    finished.set()


def test_a_response_a_client_does_not_read_frees_its_thread(serve, tmp_path):
    """One thread; a client reads nothing of a 16 MiB response: past the 1 MiB held in memory
    the body goes to a spool file, the app finishes, the next request is answered at once, and
    the client then reads the whole body in order."""
    body = _pattern(16 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished), threads=1, queue_size=0, spool_dir=str(tmp_path))
    with slow_reader(srv.port, "/big") as slow:
        assert finished.wait(WAIT)
        assert request(srv.port, get("/")).body == b"small"
        spool = _spool(srv)
        assert spool["files"] == 1 and 10 * MiB < spool["bytes"] <= 16 * MiB
        assert os.listdir(tmp_path) == []
        assert _stats(srv)["connections"]["sending_file"] == 1
        assert Reader(slow).response().body == body
    assert wait_for(lambda: _spool(srv)["files"] == 0 and _spool(srv)["bytes"] == 0)


def test_a_spooled_response_with_a_content_length_is_framed_by_it(serve):
    body = _pattern(6 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished, length=True), threads=1)
    with slow_reader(srv.port, "/big") as slow:
        assert finished.wait(WAIT)
        reader = Reader(slow)
        resp = reader.response()
        assert resp.header(b"content-length") == str(len(body)).encode()
        assert resp.body == body
        slow.sendall(get("/"))  # and the connection goes on
        assert reader.response().body == b"small"


def test_past_the_per_response_cap_the_thread_waits_and_the_body_stays_in_order(serve):
    """response_spool_bytes=1 MiB, an 8 MiB body: the spool file is sent when full, the thread
    waits for it, then spools again; never more than one file's worth on disk."""
    body = _pattern(8 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished), response_buffer_bytes=256 * 1024, response_spool_bytes=MiB)
    peak: List[int] = []
    with slow_reader(srv.port, "/big") as slow:
        # The first spool file is full and handed to the loop; the client reads nothing, so it
        # cannot be sent, and the thread waits for it: the app cannot have finished.
        assert wait_for(lambda: _stats(srv)["connections"]["sending_file"] == 1)
        assert _spool(srv)["bytes"] == MiB
        assert not finished.is_set()
        reader = Reader(slow)
        watcher = threading.Thread(target=lambda: [peak.append(_spool(srv)["bytes"]) for _ in range(200)])
        watcher.start()
        assert reader.response().body == body
        watcher.join(WAIT)
    assert finished.is_set()
    assert max(peak) <= MiB
    assert wait_for(lambda: _spool(srv)["bytes"] == 0)


def test_a_client_that_leaves_mid_spool_leaves_no_file(serve):
    body = _pattern(16 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished))
    before = _fds_after_a_request(srv)
    slow = slow_reader(srv.port, "/big")
    assert finished.wait(WAIT)
    assert _spool(srv)["files"] == 1
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    slow.close()
    assert wait_for(lambda: _spool(srv)["files"] == 0 and _spool(srv)["bytes"] == 0)
    assert wait_for(lambda: _open_fds() <= before)


def test_a_spooled_body_past_its_content_length_is_cut_there(serve):
    declared = 8 * MiB
    body = _pattern(10 * MiB)
    finished = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(declared))])
        return _pieces(body, finished, 65536)

    srv = serve(app)
    with slow_reader(srv.port) as slow:
        assert wait_for(lambda: _spool(srv)["files_total"] >= 1)
        reader = Reader(slow)
        assert reader.response().body == body[:declared]
        assert reader.closed()
    assert wait_for(lambda: _spool(srv)["bytes"] == 0)


def test_over_tls_a_spooled_response_is_read_and_sent_in_pieces(serve, tmp_path):
    certfile, keyfile, context = tls_files(tmp_path)
    body = _pattern(8 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished), threads=1, certfile=certfile, keyfile=keyfile)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        raw.settimeout(WAIT)
        raw.connect(("127.0.0.1", srv.port))
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(get("/big"))
            assert finished.wait(WAIT)  # the thread is free over TLS too
            assert _spool(srv)["files"] == 1
            assert Reader(sock).response().body == body
    assert wait_for(lambda: _spool(srv)["files"] == 0)


def test_response_spool_bytes_0_blocks_the_thread_as_before(serve):
    body = _pattern(16 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished), response_spool_bytes=0)
    with slow_reader(srv.port, "/big") as slow:
        assert wait_for(lambda: _stats(srv)["connections"]["writing_blocked"] == 1)
        assert not finished.is_set()
        assert Reader(slow).response().body == body
    assert _spool(srv)["files_total"] == 0


def test_stats_show_the_spool_in_json_and_prometheus(serve):
    body = _pattern(8 * MiB)
    finished = threading.Event()
    srv = serve(_big_app(body, finished), stats_path="/stats")
    with slow_reader(srv.port, "/big") as slow:
        assert finished.wait(WAIT)
        stats = json.loads(request(srv.port, get("/stats")).body)
        assert stats["spool"]["files"] == 1 and stats["spool"]["capacity"] == 1024**3
        assert stats["spool"]["bytes"] == stats["spool"]["bytes_total"] > 0
        text = request(srv.port, get("/stats?format=prometheus")).body.decode()
        assert f"asyncwsgi_spool_bytes {stats['spool']['bytes']}" in text
        assert "asyncwsgi_spool_files 1" in text
        Reader(slow).response()
