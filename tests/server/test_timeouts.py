"""Deadlines enforced by the event loop: no thread is held by a slow or silent client."""

from __future__ import annotations

import os
import tempfile
import threading
import time

from asyncwsgi.server.connection import bodyrate
from tests.apps import basic
from tests.helpers import WAIT, Reader, ServerThread, connect, get, request, wait_for


def _dribble(sock, data: bytes, interval: float, stop: threading.Event) -> None:
    for byte in data:
        if stop.is_set():
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return
        time.sleep(interval)


def test_head_deadline_is_not_extended_by_dribbled_bytes(serve):
    srv = serve(basic.hello, header_timeout=0.5)
    head = get("/", extra=b"X-Padding: " + b"p" * 60 + b"\r\n")  # ~90 bytes: 9 s at 10 bytes/s
    with connect(srv.port) as sock:
        stop = threading.Event()
        sender = threading.Thread(target=_dribble, args=(sock, head, 0.1, stop))
        started = time.monotonic()
        sender.start()
        reader = Reader(sock)
        resp = reader.response()
        elapsed = time.monotonic() - started
        stop.set()
        sender.join(WAIT)
    assert resp.status == 408
    # A timer reset by every byte would have let the whole head through (9 s).
    assert elapsed < 5, elapsed


def test_silent_new_connection_is_closed_quietly(serve):
    srv = serve(basic.hello, header_timeout=0.3)
    with connect(srv.port) as sock:
        reader = Reader(sock)
        assert reader.closed()
        assert reader.received == b""  # no 408 for a client that never started a request


def test_idle_keep_alive_then_slow_head(serve):
    """After a response, idling uses --keep-alive; the next head's first byte starts --header-timeout."""
    srv = serve(basic.hello, keep_alive=5, header_timeout=0.3)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        assert reader.response().status == 200
        time.sleep(0.5)  # idle longer than header_timeout, well within keep_alive
        sock.sendall(b"GET / HT")  # the next head starts, then stalls
        assert reader.response().status == 408


def test_body_idle_timeout_raises_in_app_and_answers_408(serve):
    seen = []

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read(10)
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise
        start_response("200 OK", [])
        return [b"never"]

    srv = serve(app, body_timeout=0.3, request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 408
        assert reader.closed()
    assert seen == ["RequestBodyTimeout"]


def test_body_timeout_does_not_blame_client_for_a_slow_app(serve):
    """The server stopped reading because the app is slow: that time is not the client's."""
    body = b"b" * (2 * 1024 * 1024)

    def app(environ, start_response):
        time.sleep(0.8)  # the buffer fills and reading pauses meanwhile
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [str(len(data)).encode()]

    srv = serve(app, body_timeout=0.3)
    with connect(srv.port) as sock:
        sender = threading.Thread(
            target=sock.sendall, args=(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body,)
        )
        sender.start()
        resp = Reader(sock).response()
        sender.join(WAIT)
    assert resp.status == 200 and resp.body == str(len(body)).encode()


def test_body_min_rate(serve, monkeypatch):
    monkeypatch.setattr(bodyrate, "MIN_RATE_GRACE_SECONDS", 0.5)
    monkeypatch.setattr(bodyrate, "CHECK_SECONDS", 0.1)
    srv = serve(basic.echo_sized_reads, body_timeout=30, body_min_rate=1000)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        stop = threading.Event()
        sender = threading.Thread(target=_dribble, args=(sock, b"z" * 1000, 0.05, stop))  # ~20 B/s
        sender.start()
        reader = Reader(sock)
        resp = reader.response()
        stop.set()
        sender.join(WAIT)
    assert resp.status == 408
    # A fast client is fine.
    data = b"q" * 200_000
    assert (
        request(srv.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(data) + data).body == data
    )


def test_write_stall_aborts_and_runs_close(serve):
    tracker = basic.Tracker(chunk=b"w" * 65536, chunks=100_000)
    srv = serve(tracker, write_timeout=0.5)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        assert tracker.started.wait(WAIT)
        # Never read: the server must give up on us, not wait forever.
        assert tracker.closed.wait(WAIT)
    assert tracker.produced < 100_000
    # close() runs just before the job's last hand-off, which then frees the slot on the loop.
    assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 0)


def test_write_stall_during_sendfile():
    """Native sendfile exists on the stdlib loop only (uvloop's file path is the write path above)."""
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(os.urandom(32 * 1024 * 1024))
    closed = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [])
        wrapper = environ["wsgi.file_wrapper"](open(f.name, "rb"))  # noqa: SIM115 (closed by the server)
        close = wrapper.close

        def on_close():
            close()
            closed.set()

        wrapper.close = on_close
        return wrapper

    srv = ServerThread(app, loop="asyncio", write_timeout=0.5, access_log=False).start()
    try:
        with connect(srv.port) as sock:
            sock.sendall(get("/"))
            assert closed.wait(WAIT)  # aborted while we never read
    finally:
        srv.stop()
        os.unlink(f.name)


def test_queue_timeout_answers_503_while_parked(serve):
    ran = []
    gate = threading.Event()

    def app(environ, start_response):
        ran.append(environ["PATH_INFO"])
        gate.wait(WAIT)
        start_response("200 OK", [])
        return [b"ok"]

    srv = serve(app, threads=1, queue_size=0, queue_timeout=0.3)
    with connect(srv.port) as busy:
        busy.sendall(get("/first"))
        deadline = time.monotonic() + WAIT
        while ran != ["/first"] and time.monotonic() < deadline:
            time.sleep(0.01)
        resp = request(srv.port, get("/second"))
        assert resp.status == 503
        assert resp.header(b"retry-after") == b"1"
        gate.set()
        assert Reader(busy).response().status == 200
    assert ran == ["/first"]


def test_queue_timeout_answers_503_from_queue(serve):
    ran = []
    release = threading.Event()

    def app(environ, start_response):
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/first":
            release.wait(WAIT)
        start_response("200 OK", [])
        return [b"ok"]

    srv = serve(app, threads=1, queue_size=1, queue_timeout=0.3)
    with connect(srv.port) as busy, connect(srv.port) as queued:
        busy.sendall(get("/first"))
        deadline = time.monotonic() + WAIT
        while ran != ["/first"] and time.monotonic() < deadline:
            time.sleep(0.01)
        queued.sendall(get("/second"))  # admitted to the queue, behind /first
        time.sleep(0.5)  # longer than queue_timeout
        release.set()
        assert Reader(busy).response().status == 200
        resp = Reader(queued).response()
        assert resp.status == 503
    assert ran == ["/first"]


def test_disconnected_event_is_set_when_client_leaves(serve):
    outcome = []
    started = threading.Event()

    def app(environ, start_response):
        event = environ["asyncwsgi.disconnected"]
        assert not event.is_set()
        started.set()
        outcome.append(event.wait(WAIT))
        outcome.append(event.is_set())
        start_response("200 OK", [])
        return [b"too late"]

    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        assert started.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while len(outcome) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outcome == [True, True]


def test_disconnected_event_wait_times_out_while_client_stays(serve):
    def app(environ, start_response):
        result = environ["asyncwsgi.disconnected"].wait(0.2)
        start_response("200 OK", [])
        return [repr(result).encode()]

    srv = serve(app)
    assert request(srv.port, get("/")).body == b"False"


def test_keep_alive_requests_do_not_churn_timers_and_idle_deadline_still_holds():
    """Moving a deadline later only records it: 50 keep-alive requests file the connection in
    the deadline wheel and schedule loop timers a handful of times, not once or twice each, and
    the idle close still comes on time after the last one."""
    import asyncio

    from asyncwsgi.config import Config
    from asyncwsgi.server.deadlines import DeadlineWheel
    from tests.harness import fake_connection, until

    loop = asyncio.new_event_loop()
    timers: list = []
    filings: list = []
    spans: list = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        if type(getattr(callback, "__self__", None)) is DeadlineWheel:
            timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting_call_at  # type: ignore[method-assign, assignment]

    async def scenario() -> float:
        config = Config(access_log=False, keep_alive=0.3)
        async with fake_connection(basic.hello, config, threads=1, queue_size=0) as (protocol, transport, _):
            wheel = protocol.ctx.deadlines
            add = wheel.add

            def counting_add(owner, when):
                filings.append(when)
                return add(owner, when)

            wheel.add = counting_add  # type: ignore[method-assign]
            timers.clear()
            spans.append(loop.time())
            for count in range(1, 51):
                protocol.data_received(get("/"))
                assert await until(lambda: transport.out.count(b"HTTP/1.1 200") == count)  # noqa: B023
                await asyncio.sleep(0.005)
            last = loop.time()
            spans.append(last)
            assert await until(lambda: transport.closing, timeout=WAIT)
            return loop.time() - last

    try:
        idle_for = loop.run_until_complete(scenario())
    finally:
        loop.close()
    # Lazily, the connection is filed again only when a slot comes (every keep-alive at most),
    # however many requests pass: a few filings per 0.3 s of requests (7 seen in 0.37 s under
    # parallel load), where filing on every move would be two per request (99 seen).
    budget = 6 + 3 * (spans[1] - spans[0]) / 0.3
    assert 1 <= len(filings) <= budget, f"{len(filings)} filings for 50 requests in {spans[1] - spans[0]:.2f}s"
    assert len(timers) <= budget, f"{len(timers)} deadline-wheel timers for 50 requests"
    assert 0.25 <= idle_for <= 1.5


def test_queue_timeout_reaches_requests_queued_behind_stuck_threads(serve):
    """Every thread stuck: requests in the pool's queue and parked beyond it all get 503 at
    --queue-timeout from the loop, while the threads are still stuck; none runs the app, and
    their slots come back once the threads do (issue 15)."""
    ran = []
    release = threading.Event()
    stuck = threading.Semaphore(0)

    def app(environ, start_response):
        ran.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/stuck":
            stuck.release()
            release.wait(WAIT)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    srv = serve(app, threads=2, queue_size=4, queue_timeout=0.3)
    busy = [connect(srv.port) for _ in range(2)]
    waiting = [connect(srv.port) for _ in range(6)]  # 4 fill the pool's queue, 2 are parked
    try:
        for sock in busy:
            sock.sendall(get("/stuck"))
        assert stuck.acquire(timeout=WAIT) and stuck.acquire(timeout=WAIT)
        for index, sock in enumerate(waiting):
            sock.sendall(get(f"/w{index}"))
        for sock in waiting:
            resp = Reader(sock).response()
            assert resp.status == 503 and resp.header(b"retry-after") == b"1"
        assert not release.is_set() and ran == ["/stuck", "/stuck"]
        assert srv.server.stats.timeouts["queue"] == 6
        release.set()
        for sock in busy:
            assert Reader(sock).response().status == 200
        assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 0)
        assert request(srv.port, get("/after")).status == 200
        assert ran == ["/stuck", "/stuck", "/after"]
    finally:
        release.set()
        for sock in busy + waiting:
            sock.close()
