"""The loop side of one request/response cycle. [loop]

An ``Exchange`` exists from the moment a request head is parsed until its response is
written and its job has finished. Its states:

    BUFFERING -- the loop reads the body whole before the app runs (--request-buffer-bytes), so
                no thread ever waits on the client's upload; nothing is taken from the pool
    WAITING  -- parsed, no pool slot free yet; the connection is not read meanwhile
    RUNNING  -- the app runs on a thread; body bytes flow in, Deliveries flow out
    DONE     -- the job's last Delivery has arrived; the slot is released

The thread side of the same request is ``wsgi.app.WSGICall``; the two talk only through
``bridge.InputStream`` and ``bridge.OutputChannel``.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import time
from typing import TYPE_CHECKING, Any, List, Optional, Tuple, Union

import h11

from ..accesslog import AccessRecord, combined_entry, log_access
from ..errors import ClientDisconnected
from ..http.response import CONTINUE, NO_BODY, BodyFramer, FramingError, ResponseHead, start_response
from ..log import error_log
from ..types import Environ
from ..wsgi.app import WSGICall
from ..wsgi.bridge import (
    EMPTY_INPUT,
    Delivery,
    DisconnectEvent,
    EmptyInput,
    FileSlice,
    InputStream,
    OutputChannel,
    RunCoroutine,
)
from ..wsgi.interrupt import AppInterrupt
from .slowlog import describe, thread_stack
from .stats import answer

if TYPE_CHECKING:
    from .protocol import HTTPProtocol


class ExchangeState(enum.Enum):
    """Where a request is (the module docstring says what each means); compared with ``is``."""

    BUFFERING = "buffering"
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


BUFFERING, WAITING, RUNNING, DONE = ExchangeState

# --interrupt-on-timeout: how soon to try again when the app's thread is in shielded server
# code (a hand-off to the loop, a few microseconds) at its deadline.
_INTERRUPT_RETRY_SECONDS = 0.01

# loop.sendfile is called for at most this much at a time, each call bounded by --write-timeout.
_SENDFILE_SLICE_BYTES = 1024 * 1024


class Exchange:
    __slots__ = (
        "body",
        "buffer_bytes",
        "bytes_out",
        "call",
        "cancelled",
        "channel",
        "continue_sent",
        "deadline_timer",
        "environ",
        "framer",
        "local",
        "protocol",
        "queue_slot",
        "request",
        "reserved",
        "response_complete",
        "sendfile_task",
        "slow_logged",
        "spared",
        "started",
        "state",
        "status",
        "timed_out",
        "timeout",
        "waits",
        "watched_fd",
    )

    def __init__(
        self,
        protocol: HTTPProtocol,
        request: h11.Request,
        environ: Environ,
        has_body: bool,
        local: Optional[str] = None,
        buffer_bytes: int = 0,
        timeout: float = 0.0,
    ) -> None:
        ctx = protocol.ctx
        self.protocol = protocol
        self.local = local  # answered by the loop itself (stats.HEALTH, READY, STATS), not the app
        self.request = request
        # Read the body, up to this size, before the app runs (0: it streams to the app); the
        # stream's high-water mark is then this size. What is read is counted in
        # ctx.request_buffers as it arrives (``reserved``), and given back when the request ends.
        self.buffer_bytes = buffer_bytes
        self.reserved = 0
        self.body: Union[InputStream, EmptyInput] = EMPTY_INPUT
        if has_body:
            self.body = InputStream(
                ctx.mailbox,
                ctx.config.request_buffer_bytes if buffer_bytes else ctx.config.input_buffer_bytes,
                on_resume=protocol.resume_reading_body,
                on_first_read=self.send_continue if protocol.awaiting_continue() else None,
            )
        environ["wsgi.input"] = self.body
        self.environ = environ
        self.channel = OutputChannel(ctx.mailbox, self.deliver, ctx.config.output_buffer_bytes, protocol.write_paused)
        environ["asyncwsgi.disconnected"] = DisconnectEvent(self.channel)
        interrupt = AppInterrupt() if ctx.config.interrupt_on_timeout else None
        self.call = WSGICall(ctx.app, environ, self.channel, ctx.sendfile_ok, ctx.config.queue_timeout, interrupt)
        self.state = WAITING
        self.status = 0
        self.framer: Optional[BodyFramer] = None  # set when the response head is written
        self.response_complete = False  # the whole response is handed to the transport
        self.continue_sent = False
        self.bytes_out = 0
        # time.monotonic(), not the loop's clock: uvloop's counts whole milliseconds, and access
        # log durations of a fast request would all read 0 or 1 ms.
        self.started = time.monotonic()
        self.sendfile_task: Optional[asyncio.Task[Any]] = None
        self.queue_slot: Optional[int] = None  # our --queue-timeout slot in ctx.deadlines
        self.cancelled = False  # answered by the loop while queued in the pool; its job just frees the slot
        self.watched_fd = -1  # our socket, while ctx.gone watches it for a reset (we wait for a thread)
        self.waits = False  # it has waited for a thread (parked, or in the pool's queue)
        self.timed_out = False  # cut off at --request-timeout while the app ran: its output is dropped
        self.slow_logged = False  # its stack was logged (--slow-request-log, --request-timeout)
        self.spared = False  # the pool lent a spare thread in place of ours (--spare-threads)
        self.deadline_timer: Optional[asyncio.TimerHandle] = None
        # --request-timeout, or tighter from --deadline-header (0: none; a local answer has none)
        self.timeout = timeout
        deadline: Optional[float] = None
        if timeout and local is None:
            deadline = self.started + timeout
            environ["asyncwsgi.deadline"] = deadline
            environ["asyncwsgi.time_remaining"] = _TimeRemaining(deadline)
            if ctx.pool.spares:
                self.deadline_timer = ctx.loop.call_later(timeout / 2, self._on_half_deadline)
            else:
                self.deadline_timer = ctx.loop.call_later(timeout, self._on_request_deadline)
        environ["asyncwsgi.run_coroutine"] = RunCoroutine(ctx.loop, self.channel, deadline)

    # --- dispatch ---------------------------------------------------------------------------

    def start(self) -> None:
        """Read the body first (BUFFERING), or go on to dispatch at once."""
        if self.buffer_bytes:
            self.state = BUFFERING
            return
        self.call.queued_at = self.started
        self._dispatch()

    def _dispatch(self) -> None:
        """Run the app on a thread now, or wait (not reading the connection) for a free slot."""
        ctx = self.protocol.ctx
        if self.local is not None:
            self.state = RUNNING
            ctx.loop.call_soon(self._answer_locally)
            return
        pool = ctx.pool
        behind = pool.admitted >= pool.threads  # no idle thread: it waits in the pool's queue
        if pool.try_submit(self.call.run):
            self.state = RUNNING
            if behind:
                self._wait_for_thread()
            return
        self.protocol.pause_reading_for_pool()
        pool.wait_for_slot(self._on_slot)
        self._wait_for_thread()

    def _wait_for_thread(self) -> None:
        """It waits, parked or in the pool's queue: give it --queue-timeout, and watch its socket
        for a reset once the socket is not being read (``socket_unread``)."""
        self.waits = True
        if self.protocol.transport_paused:
            self._watch_for_reset()
        ctx = self.protocol.ctx
        if ctx.config.queue_timeout:
            self.queue_slot = ctx.deadlines.add(self, ctx.loop.time() + ctx.config.queue_timeout)

    def socket_unread(self) -> None:
        """[from the protocol] Reading stopped. While the request waits for a thread, a reset
        would go unseen until its turn: watch the socket. (While it is read, a reset reaches
        ``connection_lost`` like any other, and the app never runs for nobody. Under load most
        requests wait and few are paused: this saves each of them a poll registration and a
        getsockopt, about 1 µs measured, and the 20 Hz poll while nothing is paused.)"""
        if self.waits and self.watched_fd < 0 and self.state is not DONE:
            self._watch_for_reset()

    def _on_slot(self) -> None:
        if self.state is not WAITING or self.protocol.lost:
            return  # the client left, or was answered 503, while we waited: the app never runs
        if self.watched_fd >= 0 and self._reset_pending():
            self.client_gone()  # reset since the watch last looked: the slot goes to the next one
            return
        self._leave_queue_deadline()
        self.protocol.ctx.pool.admit(self.call.run)
        self.state = RUNNING
        self.protocol.resume_reading_for_pool()

    def _answer_locally(self) -> None:
        """A health, readiness or stats request: the loop answers, whatever the threads are doing."""
        assert self.local is not None
        ctx = self.protocol.ctx
        peer = self.protocol.transport.get_extra_info("peername")
        status, reason, content_type, body = answer(
            ctx,
            self.local,
            self.environ.get("QUERY_STRING", "").encode("latin-1"),
            self.environ.get("HTTP_ACCEPT", ""),
            peer[0] if isinstance(peer, tuple) else None,
        )
        headers = [
            (b"Content-Type", content_type.encode("latin-1")),
            (b"Content-Length", b"%d" % len(body)),
            (b"Cache-Control", b"no-store"),
        ]
        self.deliver(Delivery(ResponseHead(status, reason, headers), body, end=True, last=True))

    def _watch_for_reset(self) -> None:
        sock = self.protocol.transport.get_extra_info("socket")
        if sock is not None:
            self.watched_fd = sock.fileno()
            self.protocol.ctx.gone.add(self.watched_fd, self)

    def _reset_pending(self) -> bool:
        """Whether the kernel holds an error (a reset) for our paused socket, about 1 µs to ask."""
        sock = self.protocol.transport.get_extra_info("socket")
        try:
            return sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
        except OSError:
            return True

    def _unwatch(self) -> None:
        if self.watched_fd >= 0:
            self.protocol.ctx.gone.remove(self.watched_fd)
            self.watched_fd = -1

    def _take_back(self) -> bool:
        """Take the request back before a thread runs it: True if it still waited, parked or in
        the pool's queue (where its job, once a thread dequeues it, only frees its slot)."""
        if self.state is WAITING:
            return True
        if self.state is RUNNING and self.local is None and self.call.cancel():
            self.cancelled = True
            return True
        return False  # a thread has started it (or it is done)

    def client_gone(self) -> None:
        """[from GoneWatch] The client reset while this request waited: drop it, never run the app."""
        self.watched_fd = -1
        protocol = self.protocol
        if protocol.lost or not self._take_back():
            return  # if the app runs, it will see the client is gone
        protocol.ctx.gone.dropped += 1
        error_log.debug("client of %s reset while the request waited for a thread: dropped", self.request_line())
        protocol.abort()

    def _leave_queue_deadline(self) -> None:
        if self.queue_slot is not None:
            self.protocol.ctx.deadlines.remove(self, self.queue_slot)
            self.queue_slot = None

    def on_deadline(self) -> None:
        """No thread came within --queue-timeout: answer 503 from the loop, without the app.

        Wherever the request waits: parked (no pool slot yet), or in the pool's queue behind
        busy threads, where it is taken back unless a thread has just started it.
        """
        self.queue_slot = None
        if self.protocol.lost:
            return
        self._answer_unrun("queue", 503, "no free thread within --queue-timeout", ((b"Retry-After", b"1"),))

    def _answer_unrun(
        self, timeout: str, status: int, detail: str, headers: Tuple[Tuple[bytes, bytes], ...] = ()
    ) -> bool:
        """Answer a request that waits for a thread from the loop, if it can still be taken back;
        counted as a ``timeout`` before the answer is written (a client may look at once)."""
        self._unwatch()
        parked = self.state is WAITING
        if not self._take_back():
            return False  # it started in time
        if parked:
            self._detach()  # no job of its own will ever come back (a queued one frees its slot)
            self._release_buffer()
        self._stop_request_deadline()
        self.state = DONE
        self.status = status
        self.protocol.ctx.stats.timeouts[timeout] += 1
        self.protocol.send_error(status, detail, self.request, headers)
        return True

    def _on_half_deadline(self) -> None:
        """Half its deadline has passed. An app still running holds its thread long
        enough to be likely stuck: the pool lends a spare in its place (--spare-threads), so the
        requests queued behind it run before their own deadlines, which come later than its."""
        self.deadline_timer = None
        if self.state is DONE:
            return
        ctx = self.protocol.ctx
        remaining = self.started + self.timeout - time.monotonic()
        self.deadline_timer = ctx.loop.call_later(max(0.0, remaining), self._on_request_deadline)
        self._lend_spare()

    def _lend_spare(self) -> None:
        if not self.spared and self.state is RUNNING and self.call.started_at and not self.cancelled:
            self.spared = self.protocol.ctx.pool.lend_spare()

    def _give_back_spare(self) -> None:
        if self.spared:
            self.spared = False
            self.protocol.ctx.pool.give_back_spare()

    def _on_request_deadline(self) -> None:
        """Its deadline (--request-timeout, or --deadline-header) has passed. Not started: 504
        from the loop, the app's later output dropped (its thread runs on; Python cannot stop
        it). Started: the connection is aborted. Either way a thread still in the app is counted
        stuck, whether or not its client stayed."""
        self.deadline_timer = None
        protocol = self.protocol
        if self.state is DONE:
            return
        ctx = protocol.ctx
        config = ctx.config
        source = "--request-timeout" if self.timeout == config.request_timeout else config.deadline_header
        detail = f"request not answered within {source} ({self.timeout:g}s)"
        if protocol.lost:
            if self.state is RUNNING and self.call.started_at and not self.cancelled:
                self._stuck(detail)  # the client gave up first; the thread is held all the same
            return
        if self.state is BUFFERING:
            ctx.stats.timeouts["request"] += 1
            self.abandon()  # still uploading: the client's slowness, not the app's
            protocol.send_error(408, detail, self.request)
            return
        if self._answer_unrun("request", 504, detail):
            return  # it still waited for a thread: the app never runs
        self._stuck(detail)
        if self.framer is None:
            self.status = 504
            protocol.send_error(504, detail, self.request)
        else:
            protocol.abort()

    def _stuck(self, detail: str) -> None:
        """The app has run past the deadline: log where, drop its output, count its thread as
        stuck (until the job's last delivery), and lend a spare if it has none yet."""
        ctx = self.protocol.ctx
        self.timed_out = True
        ctx.stuck.add(self)  # first: whoever sees the count below sees it stuck
        ctx.stats.timeouts["request"] += 1
        if not self.slow_logged:
            self.slow_logged = True
            error_log.warning(
                "%s: %s; its thread is at:\n%s",
                describe(self, time.monotonic()),
                detail,
                thread_stack(self.call.thread).rstrip(),
            )
        self.channel.close()  # the app's next write raises; its close() runs
        self._lend_spare()
        if self.call.interrupt is not None:
            self._interrupt()

    def _interrupt(self) -> None:
        """--interrupt-on-timeout: raise RequestTimeout in the app's thread; while the thread is
        in shielded server code, try again shortly, for as long as the request is stuck."""
        assert self.call.interrupt is not None
        fired = self.call.interrupt.fire()
        if fired is False and self in self.protocol.ctx.stuck:
            self.protocol.ctx.loop.call_later(_INTERRUPT_RETRY_SECONDS, self._interrupt)

    def _stop_request_deadline(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None

    # --- request body, from the protocol ------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        overflow = False
        if self.state is BUFFERING:
            if self.protocol.ctx.request_buffers.reserve(len(data)):
                self.reserved += len(data)
            else:
                # The server-wide budget is spent: what is here goes to the app, the rest
                # streams with the ordinary wsgi.input bound.
                overflow = True
                assert isinstance(self.body, InputStream)
                self.body.limit_to(self.protocol.ctx.config.input_buffer_bytes)
        if self.body.feed(data):
            self.protocol.pause_reading_body()
            overflow = True  # (a chunked body past the buffer, or the bound above)
        if overflow and self.state is BUFFERING:
            self._buffered()  # the rest streams to the app

    def on_body_end(self) -> None:
        self.body.feed_eof()
        if self.state is BUFFERING:
            self._buffered()

    def _buffered(self) -> None:
        """The body is read (or the buffer full): now the app's turn; queue time starts here."""
        self.call.queued_at = time.monotonic()
        self.state = WAITING
        self._dispatch()

    def abandon(self) -> None:
        """The body failed while it was being buffered (timeout, bad framing, the client left):
        the app never runs."""
        self.state = DONE
        self._release_buffer()
        self._detach()

    def _release_buffer(self) -> None:
        if self.reserved:
            self.protocol.ctx.request_buffers.release(self.reserved)
            self.reserved = 0

    def send_continue(self) -> None:
        """The app's first body read: invite the body if the client is waiting (RFC 9110 §10.1.1)."""
        if (
            self.state is RUNNING
            and self.framer is None
            and not self.continue_sent
            and self.protocol.awaiting_continue()
        ):
            self.continue_sent = True
            self.protocol.write(CONTINUE)

    def connection_lost(self) -> None:
        """The client is gone: fail the thread's blocked reads and writes so it can finish."""
        self._unwatch()
        self.body.fail(ClientDisconnected("client disconnected"))
        self.channel.close()
        if not (self.state is RUNNING and self.call.started_at):
            # (An app that runs on keeps its deadline: if it is stuck, its thread still is.)
            self._stop_request_deadline()
        if self.state is WAITING or self.state is BUFFERING:
            self._release_buffer()  # no job will come back to release it
            self.state = DONE
            self._leave_queue_deadline()
            self._detach()
        if self.sendfile_task is not None:
            self.sendfile_task.cancel()

    # --- response, from the thread ------------------------------------------------------------

    def deliver(self, d: Delivery) -> None:
        """Write one Delivery from the thread. Runs as a loop callback."""
        if self.cancelled:
            # The loop answered this request while it was queued; the job only frees its slot.
            self._free_slot()
            return
        if self.timed_out and self.framer is None:
            # Answered 504 at --request-timeout: what the app still sends is dropped; its last
            # delivery (after its close()) frees the slot.
            if d.last:
                self.state = DONE
                self._free_slot()
                self.protocol.ctx.stuck.discard(self)
            return
        protocol = self.protocol
        if protocol.lost or protocol.transport.is_closing():
            # We closed it (framing error, abort) or the client left: tell the thread to stop.
            self.channel.close()
            if d.last:
                self._finish()
            return
        try:
            out: List[Any] = []
            if d.head is not None:
                out.append(self._start_response(d.head))
            if d.abort:
                # Flush what was sent, then close: the unterminated body tells the client the
                # response is incomplete, and it is never mistaken for a whole one.
                error_log.debug("abandoning response to %s", self.request_line())
                protocol.writelines(out)
                out = []
                protocol.close()
            else:
                framer = self.framer
                assert framer is not None
                body = d.body
                if body and framer.kind is not NO_BODY:
                    excess = framer.excess
                    out.extend(framer.data(body))
                    self.bytes_out += len(body) - (framer.excess - excess)
                    if framer.excess and not excess:
                        self._cut_at_content_length()
                if d.file is not None:
                    self._sendfile(out, d.file)
                    out = []
                if d.end:
                    out.append(framer.end())
                    self.response_complete = True
                if out:
                    protocol.writelines(out)
        except FramingError as exc:
            # The app broke HTTP framing (e.g. fewer bytes than its Content-Length): all we can
            # do with a half-sent response is close the connection.
            error_log.error("response to %s violates HTTP framing: %s; closing", self.request_line(), exc)
            protocol.close()
            self.channel.close()
        if d.last:
            self._finish()
        elif d.body:
            self.channel.written(len(d.body))

    def _cut_at_content_length(self) -> None:
        """The app wrote past its Content-Length: what was declared is sent, the rest dropped.

        PEP 3333: a server sends no more than Content-Length bytes and stops iterating. The
        response is complete as framed; the connection then closes, and the app is told to stop
        (its next write raises ``ClientDisconnected``, and its iterable's ``close()`` runs).
        """
        error_log.error(
            "response to %s: the app sent more than its Content-Length; sent the declared bytes, closing",
            self.request_line(),
        )
        self.protocol.close_after_response()
        self.channel.close()

    def _start_response(self, head: ResponseHead) -> bytes:
        data, self.framer = open_response(self.protocol, self.request, head)
        self.status = head.status_code
        return data

    def _sendfile(self, out: List[Any], region: FileSlice) -> None:
        framer = self.framer
        assert framer is not None
        if framer.kind is NO_BODY or region.length == 0:
            self.protocol.writelines(out)
            self.channel.reply(0)
            return
        before, after = framer.around(region.length)
        if before:
            out.append(before)
        self.protocol.writelines(out)
        self.sendfile_task = self.protocol.ctx.loop.create_task(self._run_sendfile(region, after))

    async def _run_sendfile(self, region: FileSlice, after: bytes) -> None:
        protocol = self.protocol
        loop = protocol.ctx.loop
        stall = protocol.ctx.config.write_timeout or None
        sent = 0
        try:
            # In slices, each bounded by --write-timeout: a client that stops reading can't
            # hold the connection (and the thread waiting on it) forever.
            while sent < region.length:
                size = min(_SENDFILE_SLICE_BYTES, region.length - sent)
                coro = loop.sendfile(protocol.transport, region.file, region.offset + sent, size, fallback=False)
                done = await asyncio.wait_for(coro, stall)
                if done == 0:
                    break  # the file ended early
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
        if sent < region.length:
            # The file shrank under us: the declared framing can't be met, so the connection ends.
            error_log.error("file for %s ended %d bytes early; closing", self.request_line(), region.length - sent)
            protocol.close()
            self.channel.close()
            return
        if after:
            protocol.write(after)
        self.channel.reply(sent)

    def _free_slot(self) -> None:
        """The job of a request the loop already answered has ended: only its slot is left."""
        self._detach()
        self._release_buffer()
        self._give_back_spare()
        self.protocol.ctx.pool.release()

    def _finish(self) -> None:
        self.state = DONE
        self._stop_request_deadline()
        if self.timed_out:
            self.protocol.ctx.stuck.discard(self)
        self._release_buffer()
        self._detach()
        self._leave_queue_deadline()
        self._unwatch()
        protocol = self.protocol
        ctx = protocol.ctx
        stats = ctx.stats
        if self.local is None:
            if self.spared:
                self._give_back_spare()
            ctx.pool.release()
            call = self.call
            if call.started_at:
                stats.queued(call.started_at - call.queued_at)
            if call.queue_expired:
                stats.timeouts["queue"] += 1
        if self.status:
            stats.response(self.status)
        if ctx.config.access_log:
            self._log()
        protocol.exchange_finished(self)

    def _detach(self) -> None:
        """No thread will use this exchange's pipes again: drop their callbacks into it.

        They are reference cycles (exchange -> channel -> its bound ``deliver``); breaking them
        lets a request's objects be freed by reference counting as soon as it is done, instead
        of piling up for the cyclic garbage collector, whose pauses show in tail latency.
        """
        self.channel.detach()
        self.body.detach()

    # --- helpers ------------------------------------------------------------------------------

    def request_line(self) -> str:
        return request_line(self.request)

    def _log(self) -> None:
        protocol = self.protocol
        ctx = protocol.ctx
        if ctx.access_formatter.combined:
            duration = time.monotonic() - self.started
            entry = combined_entry(self.environ, self.request_line(), self.status, self.bytes_out, duration)
            log_access(entry, ctx.loop)
            return
        call = self.call
        started = call.started_at
        record = AccessRecord(
            environ=self.environ,
            request_line=self.request_line(),
            status=self.status,
            bytes_out=self.bytes_out,
            bytes_in=0 if self.body is EMPTY_INPUT else protocol.body_bytes_received,
            duration=time.monotonic() - self.started,
            queue=started - call.queued_at if started else 0.0,
            app=time.monotonic() - started if started else 0.0,
            disconnected=self.channel.gone,
            timed_out=self.timed_out,
        )
        log_access(ctx.access_formatter.format(record), ctx.loop)


class _TimeRemaining:
    """``environ["asyncwsgi.time_remaining"]()``: seconds left before --request-timeout (never
    negative), for the app to bound what it waits for (an HTTP call, a lock)."""

    __slots__ = ("_deadline",)

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self) -> float:
        return max(0.0, self._deadline - time.monotonic())


def open_response(protocol: HTTPProtocol, request: h11.Request, head: ResponseHead) -> Tuple[bytes, BodyFramer]:
    """The head's bytes and the body's framer, with the connection's say on keep-alive (a
    response that closes the connection makes the protocol close after it)."""
    data, framer, closes = start_response(
        head,
        head_request=request.method == b"HEAD",
        http11=request.http_version >= b"1.1",
        close=protocol.should_close_after_response(),
        extra=protocol.ctx.header_lines(),
    )
    if closes:
        protocol.close_after_response()
    return data, framer


def request_line(request: h11.Request) -> str:
    """The request line as text, for logs (escaped by the log module, not here)."""
    method = request.method.decode("ascii")
    return f"{method} {request.target.decode('latin-1')} HTTP/{request.http_version.decode('ascii')}"
