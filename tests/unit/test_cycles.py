"""Each request cycle against a fake connection that implements the seam (asyncwsgi/server/cycle/),
as uvicorn tests its protocols against a mock transport: no socket, no loop thread and no pool
thread where the logic allows. The WSGI app runs at once on the test's thread (an inline pool,
a Mailbox that runs callbacks as they are posted); mounted ASGI apps run on a test loop.
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import h11
import pytest
import wsproto
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from asyncwsgi.asgi.mounts import Mount
from asyncwsgi.config import Config
from asyncwsgi.errors import RequestBodyTooLarge
from asyncwsgi.http.head import Head
from asyncwsgi.http.response import BodyFramer, ResponseHead, start_response
from asyncwsgi.server.context import ServerContext
from asyncwsgi.server.cycle.asgi import ASGICycle
from asyncwsgi.server.cycle.probe import ProbeCycle
from asyncwsgi.server.cycle.websocket import WebSocketSession
from asyncwsgi.server.cycle.wsgi import WSGICycle
from asyncwsgi.server.seam import PAUSE_POOL, Connection, Cycle, Upgraded
from asyncwsgi.wsgi.bridge import SocketLoan
from asyncwsgi.wsgi.pool import ThreadPool


class FakeConnection:
    """The seam's ``Connection``, recording what a cycle asks of it."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.write_paused = False
        self.events: List[Any] = []
        self.finished: List[Cycle] = []
        self.stream: Optional[Upgraded] = None
        self.watching = False
        self.reset = False  # what watch_for_reset(False) answers
        self.keep_alive = True

    def write(self, data: Any) -> None:
        self.out += data

    def writelines(self, pieces: List[Any]) -> None:
        for piece in pieces:
            self.out += piece

    async def sendfile(self, file: Any, offset: int, count: int) -> int:
        file.seek(offset)
        data = file.read(count)
        self.out += data
        return len(data)

    def open_response(self, request: h11.Request, head: ResponseHead, close: bool = False) -> Tuple[bytes, BodyFramer]:
        data, framer, closes = start_response(
            head, head_request=request.method == b"HEAD", http11=True, close=close, extra=()
        )
        self.keep_alive = not closes
        return data, framer

    def send_continue(self) -> None:
        self.events.append("continue")

    def lend_socket(self, request: h11.Request) -> Optional[SocketLoan]:
        return None  # every response goes through the loop's path, which these tests look at

    def response_written(self, closes: bool) -> None:
        raise AssertionError("no socket is lent")

    def pause_reading(self, reason: int) -> None:
        self.events.append(("pause", reason))

    def resume_reading(self, reason: int) -> None:
        self.events.append(("resume", reason))

    def watch_for_reset(self, watch: bool) -> bool:
        self.watching = watch
        return self.reset and not watch

    def refuse(
        self, status: int, detail: str, request: Optional[h11.Request], headers: Sequence[Tuple[bytes, bytes]] = ()
    ) -> None:
        self.events.append(("refuse", status, tuple(headers)))
        self.closing = True

    def cycle_finished(self, cycle: Cycle) -> None:
        self.finished.append(cycle)

    def upgrade(self, stream: Upgraded) -> None:
        self.stream = stream

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def linger(self) -> None:
        self.events.append("linger")

    def response(self) -> Tuple[int, Dict[bytes, bytes], bytes]:
        """The one response written: status, headers (lower-case names), body."""
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
        client.send(h11.EndOfMessage())
        client.receive_data(bytes(self.out))
        head = client.next_event()
        assert isinstance(head, h11.Response), head
        body = b""
        while True:
            event = client.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            else:
                break
        return head.status_code, dict(head.headers), body


def _is_a_connection(connection: FakeConnection) -> Connection:
    return connection  # mypy checks that the fake implements the seam


class ImmediateMailbox:
    """Runs what the app's thread hands to the loop at once, on the same thread."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        callback(*args)

    def is_closed(self) -> bool:
        return False


class InlinePool(ThreadPool):
    """Admission as the real pool decides it (``slots`` of them); the jobs admitted run on the
    test's own thread when it calls ``run``, as a pool thread would take them."""

    def __init__(self, slots: int = 8) -> None:
        super().__init__(threads=slots, queue_size=0)
        self.jobs: List[Callable[[], None]] = []

    def try_submit(self, job: Callable[[], None]) -> bool:
        if self._admitted >= self.capacity or self._waiters:
            return False
        self._admitted += 1
        self.jobs.append(job)
        return True

    def admit(self, job: Callable[[], None]) -> None:
        self._admitted += 1
        self.jobs.append(job)

    def run(self) -> None:
        while self.jobs:
            self.jobs.pop(0)()


LOOPS: List[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
def _close_loops() -> Any:
    yield
    while LOOPS:
        LOOPS.pop().close()


def context(app: Any, pool: Optional[InlinePool] = None, **options: Any) -> ServerContext:
    """A real context on a loop that never runs: the WSGI cycle's paths here take no loop turn
    (its timers are filed, and fired by the test when it wants)."""
    options.setdefault("access_log", False)
    loop = asyncio.new_event_loop()
    LOOPS.append(loop)
    ctx = ServerContext(Config(**options), app, loop, pool or InlinePool())
    ctx.mailbox = ImmediateMailbox()  # type: ignore[assignment]
    return ctx


def run(ctx: ServerContext) -> None:
    assert isinstance(ctx.pool, InlinePool)
    ctx.pool.run()


def request(method: bytes = b"GET", target: bytes = b"/", headers: Sequence[Tuple[bytes, bytes]] = ()) -> h11.Request:
    return h11.Request(method=method, target=target, headers=[(b"Host", b"t"), *headers])


def environ(method: str = "GET", path: str = "/") -> Dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "RAW_URI": path, "QUERY_STRING": "", "SCRIPT_NAME": ""}


def hello(environ: Any, start_response: Any) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


# --- the WSGI cycle -------------------------------------------------------------------------------


def test_a_get_is_one_write_with_its_length_and_the_connection_is_told_it_ended():
    ctx = context(hello)
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    assert not connection.out and ctx.pool.admitted == 1  # admitted, waiting for a thread
    run(ctx)
    assert connection.response() == (200, {b"content-type": b"text/plain", b"content-length": b"5"}, b"hello")
    assert connection.finished == [cycle] and cycle.done and cycle.reusable
    assert ctx.pool.admitted == 0 and ctx.stats.responses["2xx"] == 1


def test_a_buffered_body_is_read_whole_before_the_app_runs():
    seen: List[bytes] = []

    def echo(environ: Any, start_response: Any) -> List[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    ctx = context(echo)
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(b"POST"), environ("POST"), has_body=True, buffer_bytes=10)
    cycle.start()
    assert not cycle.done and ctx.pool.admitted == 0  # BUFFERING: no slot taken
    cycle.on_body(b"hello ")
    assert ctx.request_buffers.used == 6 and seen == []
    cycle.on_body(b"world")
    cycle.on_body_end()
    run(ctx)
    assert seen == [b"hello world"] and cycle.done
    assert ctx.request_buffers.used == 0  # given back


def test_a_body_that_fails_while_buffered_is_refused_and_the_app_never_runs():
    ran: List[bool] = []
    ctx = context(lambda e, s: ran.append(True) or [])
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(b"POST"), environ("POST"), has_body=True, buffer_bytes=100)
    cycle.start()
    cycle.on_body(b"x" * 10)
    cycle.body_failed(RequestBodyTooLarge("too large"))
    assert connection.events == [("refuse", 413, ())] and cycle.done and ran == []
    assert ctx.request_buffers.used == 0


def test_eof_before_a_buffered_body_is_whole_is_a_400():
    ctx = context(hello)
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(b"POST"), environ("POST"), has_body=True, buffer_bytes=100)
    cycle.start()
    cycle.on_body(b"part")
    cycle.client_closed(mid_body=True)
    assert connection.events == [("refuse", 400, ())] and cycle.done


def test_the_first_read_of_a_streamed_body_invites_it_with_100_continue():
    def reads(environ: Any, start_response: Any) -> List[bytes]:
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [body]

    ctx = context(reads)
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(b"POST"), environ("POST"), has_body=True, expects_continue=True)
    cycle.on_body(b"data")  # (here before the app asks: an inline app must not block)
    cycle.on_body_end()
    cycle.start()
    run(ctx)
    assert connection.events[0] == "continue"
    assert connection.response()[2] == b"data"


def test_bytes_past_the_content_length_are_cut_and_the_connection_is_not_reused():
    def long(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "3")])
        yield b"abc"
        yield b"def"

    ctx = context(long)
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    run(ctx)
    assert connection.response()[2] == b"abc" and cycle.response_complete
    assert not cycle.reusable  # complete as framed, but the connection ends


def test_a_body_short_of_its_content_length_closes_the_connection():
    def short(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "10")])
        yield b"abc"

    ctx = context(short)
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    run(ctx)
    assert "close" in connection.events and not cycle.reusable and connection.finished == [cycle]


def test_a_request_with_no_slot_parks_and_runs_when_one_frees():
    pool = InlinePool(slots=1)
    ctx = context(hello, pool=pool)
    pool._admitted = 1  # the one slot is taken
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    assert connection.events == [("pause", PAUSE_POOL)] and connection.watching
    assert pool.waiting == 1 and not connection.out
    pool.release()  # the slot frees: the cycle takes it
    assert ("resume", PAUSE_POOL) in connection.events and pool.admitted == 1
    run(ctx)
    assert connection.response()[2] == b"hello"
    assert ("resume", PAUSE_POOL) in connection.events and cycle.done and not connection.watching


def test_a_parked_request_whose_client_reset_is_dropped_unrun():
    pool = InlinePool(slots=1)
    ran: List[bool] = []
    ctx = context(lambda e, s: ran.append(True) or [], pool=pool)
    pool._admitted = 1
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    connection.reset = True  # the kernel holds a reset for the socket
    pool.release()
    run(ctx)
    assert ran == [] and "abort" in connection.events and ctx.gone.dropped == 1


def test_a_parked_request_past_the_queue_timeout_gets_503_without_the_app():
    pool = InlinePool(slots=1)
    ctx = context(hello, pool=pool, queue_timeout=5.0)
    pool._admitted = 1
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    assert cycle.wait is not None
    cycle.wait.on_deadline()  # the DeadlineWheel's call at --queue-timeout
    assert connection.events[-1] == ("refuse", 503, ((b"Retry-After", b"1"),))
    assert cycle.done and ctx.stats.timeouts["queue"] == 1
    assert pool.waiting == 1  # its waiter is still filed; it finds the cycle done and passes
    pool.release()
    run(ctx)
    assert not connection.out


def test_the_stats_report_says_where_the_request_is():
    pool = InlinePool(slots=1)
    ctx = context(hello, pool=pool)
    pool._admitted = 1
    connection = FakeConnection()
    cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False)
    cycle.start()
    report = cycle.report(cycle.started + 1, stacks=False)
    assert report.state == "waiting_for_thread" and report.queued_at == cycle.started and not report.in_pool
    buffering = WSGICycle(ctx, FakeConnection(), request(b"POST"), environ("POST"), has_body=True, buffer_bytes=9)
    buffering.start()
    assert buffering.report(0.0, stacks=False).state == "reading_body"


# --- the deadline -------------------------------------------------------------------------------


def test_a_request_still_waiting_at_its_deadline_gets_504_and_never_runs():
    async def scenario() -> None:
        pool = InlinePool(slots=1)
        ran: List[bool] = []
        loop = asyncio.get_running_loop()
        ctx = ServerContext(Config(access_log=False), lambda e, s: ran.append(True) or [], loop, pool)
        ctx.mailbox = ImmediateMailbox()  # type: ignore[assignment]
        pool._admitted = 1
        connection = FakeConnection()
        cycle = WSGICycle(ctx, connection, request(), environ(), has_body=False, timeout=0.01)
        assert isinstance(cycle.environ["asyncwsgi.time_remaining"](), float)
        cycle.start()
        await asyncio.sleep(0.05)
        assert connection.events[-1] == ("refuse", 504, ()) and cycle.done and ran == []
        assert ctx.stats.timeouts["request"] == 1

    asyncio.run(scenario())


# --- a probe --------------------------------------------------------------------------------------


def test_a_probe_is_answered_on_the_loop_and_counted():
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ctx = ServerContext(Config(access_log=False, health_path="/health"), hello, loop, InlinePool())
        connection = FakeConnection()
        cycle = ProbeCycle(ctx, connection, request(target=b"/health"), environ(path="/health"), "health", None)
        cycle.start()
        assert not connection.out  # on the loop's next turn
        await asyncio.sleep(0)
        status, headers, body = connection.response()
        assert (status, body, headers[b"cache-control"]) == (200, b"ok\n", b"no-store")
        assert connection.finished == [cycle] and cycle.reusable and ctx.stats.responses["2xx"] == 1
        assert cycle.report(0.0, False).state == "answered_by_loop"

    asyncio.run(scenario())


# --- a mounted ASGI app -----------------------------------------------------------------------------


def asgi_cycle(app: Any, loop: asyncio.AbstractEventLoop, method: bytes = b"GET", body: bool = False) -> Any:
    ctx = ServerContext(Config(access_log=False), hello, loop, InlinePool())
    connection = FakeConnection()
    env = {**environ(method.decode(), "/api/x"), "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http"}
    env.update(SERVER_NAME="t", SERVER_PORT="80")
    head = Head([(b"host", b"t")], b"/api/x", b"", None, False, False)
    cycle = ASGICycle(ctx, connection, request(method, b"/api/x"), env, head, Mount("/api", app), body)
    return ctx, connection, cycle


def test_an_asgi_response_in_one_message_gets_its_length_and_a_204_none():
    async def scenario() -> None:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            status = 204 if scope["path"].endswith("none") else 200
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b"" if status == 204 else b"hi"})

        loop = asyncio.get_running_loop()
        _, connection, cycle = asgi_cycle(app, loop)
        cycle.start()
        await asyncio.sleep(0.01)
        assert connection.response() == (200, {b"content-length": b"2"}, b"hi") and connection.finished == [cycle]
        _, connection2, cycle2 = asgi_cycle(app, loop)  # a second request, answered 204
        cycle2.scope["path"] = "/api/none"
        cycle2.start()
        await asyncio.sleep(0.01)
        assert b"content-length" not in bytes(connection2.out).lower()

    asyncio.run(scenario())


def test_an_asgi_body_reaches_receive_and_a_failed_body_raises_there():
    async def scenario() -> None:
        received: List[Any] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            try:
                received.append(await receive())
                received.append(await receive())
            except RequestBodyTooLarge:
                received.append("failed")
                raise

        loop = asyncio.get_running_loop()
        _, connection, cycle = asgi_cycle(app, loop, b"POST", body=True)
        cycle.start()
        cycle.on_body(b"abc")
        await asyncio.sleep(0.01)
        assert received == [{"type": "http.request", "body": b"abc", "more_body": True}]
        assert connection.events[0] == "continue"  # the first receive() that had to wait invited the body
        cycle.body_failed(RequestBodyTooLarge("too large"))
        await asyncio.sleep(0.01)
        assert received[-1] == "failed"
        assert connection.response()[0] == 413  # it let the error escape, before its response: its status

    asyncio.run(scenario())


# --- a WebSocket ------------------------------------------------------------------------------------


def test_a_websocket_is_accepted_and_its_stream_carries_messages_both_ways():
    async def scenario() -> None:
        async def echo(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": message["text"].upper()})
            await receive()

        loop = asyncio.get_running_loop()
        ctx = ServerContext(Config(access_log=False, ws_ping_interval=0), hello, loop, InlinePool())
        connection = FakeConnection()
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        raw = client.send(Request(host="t", target="/ws/x"))
        key = base64.b64encode(os.urandom(16))
        env = {**environ("GET", "/ws/x"), "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http"}
        env.update(SERVER_NAME="t", SERVER_PORT="80")
        head = Head([(b"host", b"t"), (b"sec-websocket-key", key)], b"/ws/x", b"", None, False, False)
        session = WebSocketSession(ctx, connection, request(target=b"/ws/x"), env, head, Mount("/ws", echo), raw)
        session.start()
        await asyncio.sleep(0.01)
        assert connection.stream is not None and not session.reusable
        client.receive_data(bytes(connection.out))
        assert isinstance(next(client.events()), AcceptConnection)
        connection.out.clear()
        connection.stream.feed(client.send(TextMessage(data="hi")))
        await asyncio.sleep(0.01)
        client.receive_data(bytes(connection.out))
        assert [e.data for e in client.events() if isinstance(e, TextMessage)] == ["HI"]
        connection.out.clear()
        connection.stream.feed(client.send(CloseConnection(code=4001, reason="bye")))
        await asyncio.sleep(0.01)
        assert session.done and "close" in connection.events
        client.receive_data(bytes(connection.out))
        assert [e.code for e in client.events() if isinstance(e, CloseConnection)] == [4001]

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["close", "raise"])
def test_a_websocket_refused_before_accept_is_a_plain_response_that_ends_the_connection(kind):
    async def scenario() -> None:
        async def refuse(scope: Any, receive: Any, send: Any) -> None:
            await receive()
            if kind == "raise":
                raise RuntimeError("before accept")
            await send({"type": "websocket.close"})

        loop = asyncio.get_running_loop()
        ctx = ServerContext(Config(access_log=False), hello, loop, InlinePool())
        connection = FakeConnection()
        raw = wsproto.WSConnection(wsproto.ConnectionType.CLIENT).send(Request(host="t", target="/ws"))
        env = {**environ("GET", "/ws"), "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http"}
        env.update(SERVER_NAME="t", SERVER_PORT="80")
        head = Head([(b"host", b"t")], b"/ws", b"", None, False, False)
        session = WebSocketSession(ctx, connection, request(target=b"/ws"), env, head, Mount("/ws", refuse), raw)
        session.start()
        await asyncio.sleep(0.01)
        status, _, body = connection.response()
        assert status == (500 if kind == "raise" else 403) and not connection.keep_alive
        assert body == (b"Internal Server Error\n" if kind == "raise" else b"Forbidden\n")
        assert connection.finished == [session] and not session.reusable

    asyncio.run(scenario())
