"""Flow control both ways, pool saturation and disconnects, end to end."""

from __future__ import annotations

import socket
import threading
import time

from tests.apps import basic
from tests.helpers import WAIT, Reader, connect, get, wait_for

MiB = 1024 * 1024


def wait_until_stable(read, settle: float = 0.3, timeout: float = WAIT):
    """Poll ``read()`` until it stops changing for ``settle`` seconds; return the value."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return now
    raise AssertionError(f"value kept changing: {last}")


def test_app_sees_body_before_it_is_complete(serve):
    got_first = threading.Event()
    total = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        first = stream.read(5)
        got_first.set()
        rest = stream.read()
        total.append(first + rest)
        start_response("200 OK", [])
        return [str(len(first + rest)).encode()]

    srv = serve(app, request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello")
        # The second half is sent only once the app has the first: a server that buffered the
        # whole body before calling the app would never get here.
        assert got_first.wait(WAIT)
        sock.sendall(b"world")
        assert Reader(sock).response().body == b"10"
    assert total == [b"helloworld"]


def test_readline_and_iteration_over_chunked_body(serve):
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        first = stream.readline()
        limited = stream.readline(3)
        rest = list(stream)
        start_response("200 OK", [])
        return [repr((first, limited, rest)).encode()]

    srv = serve(app)
    body = b"line one\nabcdef\nlast\nno newline"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 4]), body[i : i + 4]) for i in range(0, len(body), 4))
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
        resp = Reader(sock).response()
    assert resp.body == repr((b"line one\n", b"abc", [b"def\n", b"last\n", b"no newline"])).encode()


def test_slow_app_makes_server_stop_reading_upload(serve):
    """While the app does not read, the server reads at most its buffer: the client gets stuck."""
    release = threading.Event()
    received = []

    def app(environ, start_response):
        release.wait(WAIT)
        size = 0
        while True:
            chunk = environ["wsgi.input"].read(65536)
            if not chunk:
                break
            size += len(chunk)
        received.append(size)
        start_response("200 OK", [])
        return [str(size).encode()]

    srv = serve(app, input_buffer_bytes=65536, request_spool_bytes=0)
    total = 256 * MiB
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total)
        sock.setblocking(False)
        chunk = b"u" * MiB
        sent = 0
        stalled_since = None
        while sent < total:
            try:
                sent += sock.send(chunk[: min(len(chunk), total - sent)])
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break
                time.sleep(0.005)
        # Only kernel socket buffers plus our 64 KiB high-water mark could be absorbed.
        assert sent < 32 * MiB, f"server kept reading: {sent / MiB:.1f} MiB accepted"
        release.set()
        sock.setblocking(True)
        sender = threading.Thread(target=lambda: sock.sendall(b"u" * (total - sent)))
        sender.start()
        resp = Reader(sock).response()
        sender.join(WAIT)
    assert resp.body == str(total).encode()
    assert received == [total]


def test_slow_reader_blocks_app_and_bounds_server_buffer(serve):
    tracker = basic.Tracker(chunk=b"d" * 65536, chunks=100_000)
    srv = serve(tracker, output_buffer_bytes=65536, response_buffer_bytes=0)
    ctx = srv.server._ctx
    with connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(get("/"))
        assert tracker.started.wait(WAIT)
        produced = wait_until_stable(lambda: tracker.produced)
        # The app is blocked: what it produced fits in socket buffers plus our high-water mark.
        assert produced * 65536 < 16 * MiB, f"app produced {produced} chunks with nobody reading"
        buffered = srv.on_loop(lambda: max(p.transport.get_write_buffer_size() for p in ctx.connections))
        assert buffered <= 65536 + 256 * 1024
        # Reading resumes the app.
        sock.recv(65536)
        reader_bytes = 0
        while reader_bytes < 8 * MiB:
            reader_bytes += len(sock.recv(1 << 20))
        assert wait_for(lambda: tracker.produced > produced)
    # The client left mid-response: the app's iteration stops and close() is called.
    assert tracker.closed.wait(WAIT)
    assert tracker.produced < 100_000
    assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.admitted) == 0)


def test_disconnect_while_app_blocked_on_input_calls_close(serve):
    closed = threading.Event()
    errors = []

    class Body:
        def __iter__(self):
            return iter([b"never"])

        def close(self):
            closed.set()

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read(100)
        except ConnectionError as exc:
            errors.append(type(exc).__name__)
        start_response("200 OK", [])
        return Body()

    srv = serve(app, request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        time.sleep(0.1)
    assert closed.wait(WAIT)
    assert errors == ["ClientDisconnected"]


def test_pool_saturation_all_requests_complete(serve):
    active = []
    peak = []
    lock = threading.Lock()

    def app(environ, start_response):
        with lock:
            active.append(1)
            peak.append(len(active))
        time.sleep(0.1)
        with lock:
            active.pop()
        start_response("200 OK", [])
        return [b"done"]

    srv = serve(app, threads=2, queue_size=1)
    ctx = srv.server._ctx
    socks = [connect(srv.port) for _ in range(12)]
    try:
        for s in socks:
            s.sendall(get("/"))
        # Beyond threads + queue_size, requests wait unread on their connections.
        assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.waiting) > 0)
        assert srv.on_loop(lambda: ctx.pool.admitted) <= 3
        bodies = [Reader(s).response().body for s in socks]
    finally:
        for s in socks:
            s.close()
    assert bodies == [b"done"] * 12
    assert max(peak) == 2


def test_many_concurrent_httpx_clients(serve):
    import httpx

    srv = serve(basic.echo, threads=4)
    results = []

    def worker(n):
        with httpx.Client(base_url=srv.url, timeout=WAIT) as client:
            for i in range(20):
                payload = f"{n}-{i}".encode() * 100
                results.append(client.post("/", content=payload).content == payload)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    assert len(results) == 160 and all(results)


def test_queued_request_of_departed_client_never_runs(serve):
    """A request admitted to the queue whose client then resets is dropped before the app runs."""
    import struct

    gate = threading.Event()
    started = []

    def app(environ, start_response):
        started.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/block":
            gate.wait(WAIT)
        start_response("200 OK", [])
        return [b"ok"]

    srv = serve(app, threads=1, queue_size=4)
    ctx = srv.server._ctx
    blocker = connect(srv.port)
    blocker.sendall(get("/block"))
    assert wait_for(lambda: started == ["/block"])
    doomed = connect(srv.port)
    doomed.sendall(get("/doomed"))
    assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.admitted) == 2)  # queued behind /block
    # Reset (not FIN): the server learns at once that the client is gone.
    doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    doomed.close()
    assert wait_for(lambda: srv.on_loop(lambda: len(ctx.connections)) == 1)
    gate.set()
    assert Reader(blocker).response().body == b"ok"
    blocker.close()
    assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.admitted) == 0)
    assert started == ["/block"]
