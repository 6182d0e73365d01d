"""The loop side of one request/response cycle. [loop]

An ``Exchange`` exists from the moment a request head is parsed until its response is
written and its worker job has finished. Its states:

    WAITING  -- parsed, no worker slot free yet; the connection is not read meanwhile
    RUNNING  -- the app runs on a worker; body bytes flow in, Deliveries flow out
    DONE     -- the job's last Delivery has arrived; the slot is released

The worker side of the same request is ``wsgi.WSGICall``; the two talk only through
``bridge.InputStream`` and ``bridge.OutputChannel``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, List, Optional, Union

import h11

from .bridge import (
    EMPTY_INPUT,
    Delivery,
    DisconnectEvent,
    EmptyInput,
    FileSlice,
    InputStream,
    OutputChannel,
    ResponseHead,
)
from .errors import ClientDisconnected
from .log import error_log, log_access
from .types import Environ
from .wsgi import WSGICall

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

WAITING, RUNNING, DONE = "WAITING", "RUNNING", "DONE"

# loop.sendfile is called for at most this much at a time, each call bounded by --write-timeout.
_SENDFILE_SLICE_BYTES = 1024 * 1024


class _Sized:
    """A stand-in for sendfile'd bytes: h11 only needs the length to frame them."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


class Exchange:
    __slots__ = (
        "body",
        "body_allowed",
        "bytes_out",
        "call",
        "channel",
        "environ",
        "protocol",
        "queue_timer",
        "request",
        "sendfile_task",
        "started",
        "state",
        "status",
    )

    def __init__(self, protocol: HTTPProtocol, request: h11.Request, environ: Environ, has_body: bool) -> None:
        ctx = protocol.ctx
        self.protocol = protocol
        self.request = request
        self.body: Union[InputStream, EmptyInput] = EMPTY_INPUT
        if has_body:
            self.body = InputStream(
                ctx.loop,
                ctx.config.input_buffer_bytes,
                on_resume=protocol.resume_reading_body,
                on_first_read=self.send_continue if protocol.conn.they_are_waiting_for_100_continue else None,
            )
        environ["wsgi.input"] = self.body
        self.environ = environ
        self.channel = OutputChannel(ctx.loop, self.deliver, ctx.config.output_buffer_bytes, protocol.write_paused)
        environ["asyncwsgi.disconnected"] = DisconnectEvent(self.channel)
        self.call = WSGICall(ctx.app, environ, self.channel, ctx.sendfile_ok, ctx.config.queue_timeout)
        self.state = WAITING
        self.status = 0
        self.body_allowed = request.method != b"HEAD"
        self.bytes_out = 0
        self.started = ctx.loop.time()
        self.sendfile_task: Optional[asyncio.Task[Any]] = None
        self.queue_timer: Optional[asyncio.TimerHandle] = None

    # --- dispatch ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run the app on a worker now, or wait (not reading the connection) for a free slot."""
        ctx = self.protocol.ctx
        self.call.queued_at = time.monotonic()
        if ctx.pool.try_submit(self.call.run):
            self.state = RUNNING
            return
        self.protocol.pause_reading_for_pool()
        ctx.pool.wait_for_slot(self._on_slot)
        if ctx.config.queue_timeout:
            self.queue_timer = ctx.loop.call_later(ctx.config.queue_timeout, self._queue_timed_out)

    def _on_slot(self) -> None:
        if self.state is not WAITING or self.protocol.lost:
            return  # the client left, or was answered 503, while we waited: the app never runs
        if self.queue_timer is not None:
            self.queue_timer.cancel()
            self.queue_timer = None
        self.protocol.ctx.pool.admit(self.call.run)
        self.state = RUNNING
        self.protocol.resume_reading_for_pool()

    def _queue_timed_out(self) -> None:
        """No thread came within --queue-timeout: answer 503 from the loop, without the app."""
        self.queue_timer = None
        if self.state is not WAITING or self.protocol.lost:
            return
        self.state = DONE
        self.status = 503
        self.protocol.send_error(
            503, "no worker thread within --queue-timeout", self.request, ((b"Retry-After", b"1"),)
        )

    # --- request body, from the protocol ------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        if self.body.feed(data):
            self.protocol.pause_reading_body()

    def on_body_end(self) -> None:
        self.body.feed_eof()

    def send_continue(self) -> None:
        """The app's first body read: invite the body if the client is waiting (RFC 9110 §10.1.1)."""
        conn = self.protocol.conn
        if self.state is RUNNING and conn.they_are_waiting_for_100_continue and conn.our_state is h11.SEND_RESPONSE:
            self.protocol.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))

    def connection_lost(self) -> None:
        """The client is gone: fail the worker's blocked reads and writes so it can finish."""
        self.body.fail(ClientDisconnected("client disconnected"))
        self.channel.close()
        if self.state is WAITING:
            self.state = DONE
            if self.queue_timer is not None:
                self.queue_timer.cancel()
                self.queue_timer = None
        if self.sendfile_task is not None:
            self.sendfile_task.cancel()

    # --- response, from the worker ------------------------------------------------------------

    def deliver(self, d: Delivery) -> None:
        """Write one Delivery from the worker. Runs as a loop callback."""
        protocol = self.protocol
        if protocol.lost or protocol.transport.is_closing():
            # We closed it (framing error, abort) or the client left: tell the worker to stop.
            self.channel.close()
            if d.last:
                self._finish()
            return
        conn = protocol.conn
        try:
            out: List[Any] = []
            if d.head is not None:
                out.append(conn.send(self._response(d.head)))
            if d.abort:
                # Flush what was sent, then close: the unterminated body tells the client the
                # response is incomplete, and it is never mistaken for a whole one.
                error_log.debug("abandoning response to %s", self.request_line())
                protocol.writelines(out)
                out = []
                protocol.close()
            else:
                body = d.body
                if body and self.body_allowed:
                    out.extend(_passthrough(conn, h11.Data(data=body)))
                    self.bytes_out += len(body)
                if d.file is not None:
                    self._sendfile(out, d.file)
                    out = []
                if d.end:
                    out.append(conn.send(h11.EndOfMessage()))
                if out:
                    protocol.writelines(out)
        except h11.LocalProtocolError as exc:
            # The app broke HTTP framing (e.g. fewer bytes than its Content-Length): all we can
            # do with a half-sent response is close the connection.
            error_log.error("response to %s violates HTTP framing: %s; closing", self.request_line(), exc)
            protocol.close()
            self.channel.close()
        self.channel.written(len(d.body))
        if d.last:
            self._finish()

    def _response(self, head: ResponseHead) -> h11.Response:
        protocol = self.protocol
        ctx = protocol.ctx
        headers = head.headers
        headers.append((b"Date", ctx.date_header()))
        if ctx.server_header is not None:
            headers.append((b"Server", ctx.server_header))
        if protocol.should_close_after_response():
            headers.append((b"Connection", b"close"))
        self.status = head.status_code
        if head.status_code in (204, 304):
            self.body_allowed = False
        return h11.Response(status_code=head.status_code, reason=head.reason, headers=headers)

    def _sendfile(self, out: List[Any], region: FileSlice) -> None:
        if not self.body_allowed or region.length == 0:
            self.protocol.writelines(out)
            self.channel.reply(0)
            return
        pieces = _passthrough(self.protocol.conn, h11.Data(data=_Sized(region.length)))  # type: ignore[arg-type]
        split = next(i for i, piece in enumerate(pieces) if type(piece) is _Sized)
        self.protocol.writelines(out + pieces[:split])
        self.sendfile_task = self.protocol.ctx.loop.create_task(self._run_sendfile(region, pieces[split + 1 :]))

    async def _run_sendfile(self, region: FileSlice, after: List[bytes]) -> None:
        protocol = self.protocol
        loop = protocol.ctx.loop
        stall = protocol.ctx.config.write_timeout or None
        sent = 0
        try:
            # In slices, each bounded by --write-timeout: a client that stops reading can't
            # hold the connection (and the worker waiting on it) forever.
            while sent < region.length:
                size = min(_SENDFILE_SLICE_BYTES, region.length - sent)
                coro = loop.sendfile(protocol.transport, region.file, region.offset + sent, size, fallback=False)
                done = await asyncio.wait_for(coro, stall)
                if done == 0:
                    break  # the file ended early; h11 sees the short body at EndOfMessage
                sent += done
        except asyncio.CancelledError:
            return
        except Exception as exc:
            error_log.debug("sendfile to %s failed: %r", self.request_line(), exc)
            protocol.abort()
            self.channel.close()
            return
        finally:
            self.sendfile_task = None
        self.bytes_out += sent
        if after:
            protocol.writelines(after)
        self.channel.reply(sent)

    def _finish(self) -> None:
        self.state = DONE
        protocol = self.protocol
        ctx = protocol.ctx
        ctx.pool.release()
        if ctx.config.access_log:
            self._log()
        protocol.exchange_finished(self)

    # --- helpers ------------------------------------------------------------------------------

    def request_line(self) -> str:
        return request_line(self.request)

    def _log(self) -> None:
        env = self.environ
        log_access(
            env.get("REMOTE_ADDR", "-"),
            self.request_line(),
            self.status,
            self.bytes_out,
            env.get("HTTP_REFERER", "-"),
            env.get("HTTP_USER_AGENT", "-"),
            self.protocol.ctx.loop.time() - self.started,
        )


def _passthrough(conn: h11.Connection, event: h11.Data) -> List[Any]:
    """h11's framing pieces around ``event.data``, which is passed through uncopied."""
    pieces = conn.send_with_data_passthrough(event)
    assert pieces is not None  # None only for ConnectionClosed
    return pieces


def request_line(request: h11.Request) -> str:
    """The request line as text, for logs (escaped by the log module, not here)."""
    method = request.method.decode("ascii")
    return f"{method} {request.target.decode('latin-1')} HTTP/{request.http_version.decode('ascii')}"
