"""Resource tests over 127.0.0.1: many slow, idle or vanishing clients, bounded in time.

Each drives a real server in this process and asserts on what it holds afterwards: connections,
worker slots, threads and file descriptors back at their baseline.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import socket
import struct
import threading
import time

import pytest

from tests.apps import basic
from tests.helpers import WAIT, Reader, connect, get, request, wait_for

pytestmark = pytest.mark.slow


def need_fds(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= count:
        return
    if hard != resource.RLIM_INFINITY and hard < count:
        pytest.skip(f"needs {count} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_slowloris_does_not_starve_good_clients(serve):
    """500 connections dribbling a header byte a second: a normal client is served while they
    are all still open, and every one of them is closed at the head deadline."""
    need_fds(4096)
    header_timeout = 3.0
    srv = serve(basic.hello, header_timeout=header_timeout)
    ctx = srv.server._ctx
    port = srv.port
    closed_by_server = []

    async def slow_client(stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 100
        try:
            for byte in head:
                writer.write(bytes([byte]))
                try:
                    data = await asyncio.wait_for(reader.read(1024), 1.0)
                except asyncio.TimeoutError:
                    continue
                closed_by_server.append(data)  # 408 then EOF, or EOF
                return
        except ConnectionError:
            closed_by_server.append(b"reset")
        finally:
            writer.close()

    async def attack() -> float:
        stop = asyncio.Event()
        started = time.monotonic()
        tasks = [asyncio.ensure_future(slow_client(stop)) for _ in range(500)]
        await asyncio.sleep(1.0)  # all connected and dribbling
        held = await asyncio.to_thread(srv.on_loop, lambda: len(ctx.connections))
        good = await asyncio.to_thread(request, port, get("/"))
        still_held = await asyncio.to_thread(srv.on_loop, lambda: len(ctx.connections))
        assert good.status == 200
        assert held >= 450 and still_held >= 450, (held, still_held)  # served while they were all open
        await asyncio.wait_for(asyncio.gather(*tasks), header_timeout + 10)
        return time.monotonic() - started

    elapsed = asyncio.run(attack())
    assert len(closed_by_server) == 500
    assert all(d.startswith(b"HTTP/1.1 408") or d in (b"", b"reset") for d in closed_by_server)
    # Closed at the deadline, not after the full 115-byte dribble (about two minutes).
    assert elapsed < header_timeout + 10
    assert wait_for(lambda: srv.on_loop(lambda: len(ctx.connections)) == 0)


def test_2000_idle_keep_alive_connections_stay_usable(serve):
    need_fds(8192)
    srv = serve(basic.path_echo, keep_alive=120)
    ctx = srv.server._ctx
    socks = []
    try:
        for i in range(2000):
            sock = connect(srv.port)
            sock.sendall(get(f"/first{i}"))
            socks.append(sock)
        readers = [Reader(s) for s in socks]
        for i, reader in enumerate(readers):
            assert reader.response().body == f"GET /first{i} ?".encode()
        assert srv.on_loop(lambda: len(ctx.connections)) == 2000
        # Idle connections hold no thread: a new client is served at once.
        assert request(srv.port, get("/other")).body == b"GET /other ?"
        # (The thread may write its answer before the loop counts its job done.)
        assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.admitted) == 0)
        for i, (sock, reader) in enumerate(zip(socks, readers, strict=True)):
            sock.sendall(get(f"/again{i}"))
            assert reader.response().body == f"GET /again{i} ?".encode()
    finally:
        for sock in socks:
            sock.close()
    assert wait_for(lambda: srv.on_loop(lambda: len(ctx.connections)) == 0)


def test_10000_requests_with_random_disconnects_leave_nothing_behind(serve):
    need_fds(4096)

    def app(environ, start_response):
        kind = environ["PATH_INFO"]
        if kind == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return (b"x" * 4096 for _ in range(64))
        if kind == "/upload":
            environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    srv = serve(app, threads=4)
    ctx = srv.server._ctx
    assert request(srv.port, get("/warm")).status == 200
    assert wait_for(lambda: srv.on_loop(lambda: len(ctx.connections)) == 0)
    baseline_fds = open_fds()
    baseline_threads = threading.active_count()
    rng = random.Random(1234)
    answered = 0

    def one(i: int) -> int:
        path = rng.choice(["/ok", "/stream", "/upload"])
        # An upload is cut short (its body incomplete) and then closed or reset: waiting for an
        # answer to it would only wait out the body timeout.
        how = rng.choice(["close", "reset"] if path == "/upload" else ["read", "close", "reset", "half"])
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT)
        try:
            if path == "/upload":
                sock.sendall(
                    b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                    + b"u" * rng.randrange(0, 100000)
                )
            else:
                sock.sendall(get(path))
            if how == "read":
                return int(Reader(sock).response().status == 200)
            if how == "half":
                sock.recv(rng.randrange(1, 2048))
            if how == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return 0
        except (TimeoutError, ConnectionError):
            return 0
        finally:
            sock.close()

    results = []

    def worker(offset: int) -> None:
        for i in range(offset, 10_000, 8):
            results.append(one(i))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 10_000
    answered = sum(results)
    assert answered > 1000  # the ones that waited for their answer got it
    assert wait_for(
        lambda: srv.on_loop(lambda: (len(ctx.connections), ctx.pool.admitted, ctx.gate.open)) == (0, 0, 0), 30
    )
    assert wait_for(lambda: open_fds() <= baseline_fds, 10), (open_fds(), baseline_fds)
    assert threading.active_count() == baseline_threads
    assert request(srv.port, get("/ok")).status == 200


def test_over_capacity_slow_requests_get_503_within_queue_budget(serve):
    ran = []

    def app(environ, start_response):
        ran.append(1)
        time.sleep(0.4)
        start_response("200 OK", [])
        return [b"done"]

    srv = serve(app, threads=2, queue_size=2, queue_timeout=0.5)
    results = []

    def client() -> None:
        started = time.monotonic()
        resp = request(srv.port, get("/"))
        results.append((resp.status, resp.header(b"retry-after"), time.monotonic() - started))

    threads = [threading.Thread(target=client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    statuses = sorted(status for status, _, _ in results)
    assert len(results) == 12
    assert set(statuses) == {200, 503}
    assert statuses.count(200) == len(ran) >= 4  # at least threads + queue ran; none of the 503s did
    assert all(retry == b"1" for status, retry, _ in results if status == 503)
    # Refused within the queue budget (plus scheduling slack), not after waiting for a thread.
    assert all(took < 0.5 + 1.0 for status, _, took in results if status == 503)


def stuck_app():
    """An app whose ``/stuck`` requests hold their thread until ``release`` is set; any other
    reads its body and answers. ``ran`` lists the paths the app ran for."""
    ran: list = []
    release = threading.Event()

    def app(environ, start_response):
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/stuck":
            release.wait(60)
        else:
            environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return app, ran, release


def test_clients_that_reset_while_waiting_for_a_thread_are_dropped_unrun(serve):
    """Both threads stuck; 300 clients each send a head and 256 KiB of a 1 MiB body, then reset.
    Their connections go within a few poll intervals, none runs the app, /stats counts them, and
    the descriptors come back, while the threads are still stuck (issue 15)."""
    need_fds(4096)
    app, ran, release = stuck_app()
    srv = serve(app, threads=2, queue_size=32, queue_timeout=0, request_buffer_bytes=0)
    ctx = srv.server._ctx
    busy = [connect(srv.port) for _ in range(2)]
    try:
        for sock in busy:
            sock.sendall(get("/stuck"))
        assert wait_for(lambda: ran.count("/stuck") == 2)
        baseline = open_fds()
        head = b"POST /gone HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (1 << 20)
        part = b"x" * (256 * 1024)
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", srv.port))
            sock.setblocking(False)
            try:
                sock.sendall(head + part)
            except BlockingIOError:
                pass  # the server stopped reading it: the rest stays in our buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset
        assert wait_for(lambda: srv.on_loop(lambda: len(ctx.connections)) == 2, timeout=WAIT)
        assert wait_for(lambda: open_fds() <= baseline + 5)
        assert ran == ["/stuck", "/stuck"] and not release.is_set()
        dropped = srv.on_loop(lambda: ctx.gone.dropped)
        assert dropped > 0
        assert srv.on_loop(lambda: ctx.pool.admitted) <= 2 + 32
    finally:
        release.set()
        for sock in busy:
            sock.close()
    assert request(srv.port, get("/after")).status == 200


def test_a_waiting_request_is_watched_for_a_reset_only_once_its_socket_is_not_read(serve):
    """A request that waits for a thread while its socket is still read needs no watch: a reset
    reaches connection_lost. Once more bytes come, reading stops and the watch takes over."""
    app, ran, release = stuck_app()
    srv = serve(app, threads=1, queue_size=1, queue_timeout=0)
    ctx = srv.server._ctx
    stuck = connect(srv.port)
    waiting = [connect(srv.port) for _ in range(3)]  # one in the pool's queue, two parked
    try:
        stuck.sendall(get("/stuck"))
        assert wait_for(lambda: ran == ["/stuck"])
        for sock in waiting:
            sock.sendall(get("/waits"))
        assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.waiting) == 2)
        assert srv.on_loop(lambda: len(ctx.gone)) == 0  # all three still read: nothing watched
        waiting[2].sendall(get("/pipelined"))  # bytes while parked: reading stops, the watch starts
        assert wait_for(lambda: srv.on_loop(lambda: len(ctx.gone)) == 1)
        for sock in waiting[:2]:  # unwatched, read: their resets still drop them unrun
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        waiting[2].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        waiting[2].close()  # watched: dropped by the watch
        assert wait_for(lambda: srv.on_loop(lambda: len(ctx.connections)) == 1)
        assert wait_for(lambda: srv.on_loop(lambda: len(ctx.gone)) == 0)
    finally:
        release.set()
    assert wait_for(lambda: srv.on_loop(lambda: ctx.pool.admitted) == 0)
    assert ran == ["/stuck"]  # none of the reset requests ran the app
    stuck.close()
    assert request(srv.port, get("/after")).status == 200
