"""One request to the WSGI app, on the loop's side: body in, the job on a thread, its end. [loop]

A ``WSGICycle`` lives from the moment its head is accepted until its response is written and its
job has finished (``seam.CycleState``): BUFFERING while the loop reads its body whole, WAITING
for a pool slot, RUNNING once admitted (queued for a thread, then in the app), DONE when the
job's last Delivery has come and its slot is released.

The thread side of the same request is ``wsgi.app.WSGICall``; the two talk only through
``wsgi.bridge`` (``wsgi.input``, and the Deliveries ``delivery.DeliveryWriter`` writes). What only
some requests need is an object of its own, made only for them: the body (``body``), the wait
for a thread (``waiting``) and the deadline (``deadline``).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import h11

from ...errors import ClientDisconnected, RequestBodyError
from ...log import error_log
from ...types import Environ
from ...wsgi.app import WSGICall
from ...wsgi.bridge import EMPTY_INPUT, DisconnectEvent, OutputChannel, RunCoroutine
from ...wsgi.interrupt import AppInterrupt
from ..access import Details, record, request_line
from ..seam import BUFFERING, DONE, PAUSE_POOL, RUNNING, WAITING, Connection, CycleReport, in_flight
from ..slowlog import thread_stack
from .body import RequestBody
from .deadline import RequestDeadline
from .delivery import DeliveryWriter
from .waiting import ThreadWait

if TYPE_CHECKING:
    from ..context import ServerContext


class WSGICycle(DeliveryWriter):
    """One request/response cycle of the WSGI app."""

    __slots__ = ("body", "call", "ctx", "deadline", "environ", "slow_logged", "started", "state", "wait")

    def __init__(
        self,
        ctx: ServerContext,
        connection: Connection,
        request: h11.Request,
        environ: Environ,
        has_body: bool,
        expects_continue: bool = False,
        buffer_bytes: int = 0,
        timeout: float = 0.0,
    ) -> None:
        super().__init__(connection, request)
        self.ctx = ctx
        self.body = RequestBody(ctx, connection, expects_continue, buffer_bytes) if has_body else None
        environ["wsgi.input"] = EMPTY_INPUT if self.body is None else self.body.stream
        self.environ = environ
        self.channel = OutputChannel(
            ctx.mailbox,
            self.deliver,
            ctx.config.output_buffer_bytes,
            connection.write_paused,
            ctx.spool,
            ctx.response_spool_bytes,
        )
        self.cancelled = False
        self.sendfile_task = None
        self.after_file = None
        environ["asyncwsgi.disconnected"] = DisconnectEvent(self.channel)
        interrupt = AppInterrupt() if ctx.config.interrupt_on_timeout else None
        self.call = WSGICall(ctx.app, environ, self.channel, ctx.config.queue_timeout, interrupt)
        self.state = WAITING
        # time.monotonic(), not the loop's clock: uvloop's counts whole milliseconds, and access
        # log durations of a fast request would all read 0 or 1 ms.
        self.started = time.monotonic()
        self.slow_logged = False  # its stack was logged (--slow-request-log, or at its deadline)
        self.wait: Optional[ThreadWait] = None  # made when it has to wait for a thread
        # --request-timeout, or tighter from --deadline-header (0: none)
        self.deadline = RequestDeadline(self, ctx, environ, self.started, timeout) if timeout else None
        at = None if self.deadline is None else self.deadline.at
        environ["asyncwsgi.run_coroutine"] = RunCoroutine(ctx.loop, self.channel, at)

    @property
    def done(self) -> bool:
        return self.state is DONE

    # --- to a thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Read the body first (BUFFERING), or go on to dispatch at once."""
        if self.body is not None and self.body.buffering:
            self.state = BUFFERING
            return
        self.call.queued_at = self.started
        self._dispatch()

    def _dispatch(self) -> None:
        """Run the app on a thread now, or wait (not reading the connection) for a free slot."""
        ctx = self.ctx
        pool = ctx.pool
        behind = pool.admitted >= pool.threads  # no idle thread: it waits in the pool's queue
        if self.body is None and not pool.admitted:
            # No other job runs, so the loop would wake for this response alone: a whole one may
            # go out from its thread (bridge.SocketLoan). Hello world at one connection (uvloop):
            # 7.1 -> 5.7 context switches a request, p50 190 -> 140 µs, +6% to +29% in req/s
            # over 7 alternated rounds. Lent under load too, it cost 30% at 50 connections:
            # threads each writing for themselves, where the awake loop writes a batch.
            self.channel.loan = self.connection.lend_socket(self.request)
        if ctx.slow_watch is not None:
            ctx.slow_watch.add(self)
        if pool.try_submit(self.call.run):
            self.state = RUNNING
            if behind:
                self.wait = ThreadWait(self, self.connection, ctx.deadlines, ctx.config.queue_timeout)
            return
        self.connection.pause_reading(PAUSE_POOL)
        pool.wait_for_slot(self._on_slot)
        self.wait = ThreadWait(self, self.connection, ctx.deadlines, ctx.config.queue_timeout)

    def _on_slot(self) -> None:
        """[pool] A slot is free: take it, unless the request is over or its client reset."""
        wait = self.wait
        if self.state is not WAITING or self.connection.closing or wait is None:
            return  # the client left, or was answered 503, while we waited: the app never runs
        if wait.reset_seen():
            self.client_reset()  # the slot goes to the next one
            return
        wait.leave_queue()
        self.ctx.pool.admit(self.call.run)
        self.state = RUNNING
        self.connection.resume_reading(PAUSE_POOL)

    def _take_back(self) -> bool:
        """Take the request back before a thread runs it: True if it still waited, parked or in
        the pool's queue (where its job, once a thread dequeues it, only frees its slot)."""
        if self.state is WAITING:
            return True
        if self.state is RUNNING and self.call.cancel():
            self.cancelled = True
            return True
        return False  # a thread has started it (or it is done)

    def client_reset(self) -> None:
        """[connection] The client reset while this request waited: drop it, never run the app."""
        if not self.connection.closing and self._take_back():
            self.ctx.gone.dropped += 1
            error_log.debug("client of %s reset while the request waited for a thread: dropped", self.request_line())
            self.connection.abort()

    def queue_timed_out(self) -> None:
        """[ThreadWait] No thread within --queue-timeout: 503 from the loop, without the app."""
        if not self.connection.closing:
            self._answer_unrun("queue", 503, "no free thread within --queue-timeout", ((b"Retry-After", b"1"),))

    def _answer_unrun(
        self, timeout: str, status: int, detail: str, headers: Sequence[Tuple[bytes, bytes]] = ()
    ) -> bool:
        """Answer a request that waits for a thread from the loop, if it can still be taken back;
        counted as a ``timeout`` before the answer is written (a client may look at once)."""
        parked = self.state is WAITING
        if not self._take_back():
            return False  # it started in time
        if self.deadline is not None:
            self.deadline.stop()
        if self.wait is not None:
            self.wait.end()
        if parked:
            self._release()  # no job of its own will ever come back (a queued one frees its slot)
        self.state = DONE
        self.status = status
        self.ctx.stats.timeouts[timeout] += 1
        self.connection.refuse(status, detail, self.request, headers)
        return True

    # --- its deadline (deadline.RequestDeadline asks) -------------------------------------------

    def in_app(self) -> bool:
        return self.state is RUNNING and bool(self.call.started_at) and not self.cancelled

    def deadline_passed(self, detail: str) -> None:
        """Not started: 504 from the loop, the app's later output dropped (its thread runs on;
        Python cannot stop it). Started: the connection is aborted. Either way a thread still in
        the app is counted stuck, whether or not its client stayed."""
        deadline = self.deadline
        assert deadline is not None
        if self.state is DONE:
            return
        if self.connection.closing:
            if self.in_app():
                deadline.stuck()  # the client gave up first; the thread is held all the same
            return
        if self.state is BUFFERING:
            self.ctx.stats.timeouts["request"] += 1
            self._abandon()  # still uploading: the client's slowness, not the app's
            self.connection.refuse(408, detail, self.request)
            return
        if self._answer_unrun("request", 504, detail):
            return  # it still waited for a thread: the app never runs
        deadline.stuck()
        if self.response_started:
            self.connection.abort()
        else:
            self.status = 504
            self.connection.refuse(504, detail, self.request)

    # --- its body, from the connection ----------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        assert self.body is not None
        if self.body.feed(data):
            self._buffered()  # the rest streams to the app

    def on_body_end(self) -> None:
        if self.body is not None and self.body.end():
            self._buffered()

    def _buffered(self) -> None:
        """The body is read (or the buffer full): now the app's turn; queue time starts here."""
        self.call.queued_at = time.monotonic()
        self.state = WAITING
        self._dispatch()

    def body_failed(self, exc: Exception) -> None:
        if self.state is BUFFERING:
            assert isinstance(exc, RequestBodyError)
            self._abandon()  # the app never runs: the client hears why
            self.connection.refuse(exc.status, str(exc), self.request)
        elif self.body is not None:
            self.body.stream.fail(exc)

    def client_closed(self, mid_body: bool) -> None:
        if self.state is BUFFERING and mid_body:
            # Its body will never be whole: the app never runs, and the client (which can still
            # read) gets 400, as when the EOF comes before the head is parsed.
            self._abandon()
            self.connection.refuse(400, "client closed its side before the request body was complete", self.request)
            return
        self.channel.mark_gone()  # asyncwsgi.disconnected; what the app sends still goes out
        if mid_body and self.body is not None:
            # EOF before the body ended is the client going away, not a malformed body.
            self.body.stream.fail(ClientDisconnected("client closed the connection mid-body"))

    def _abandon(self) -> None:
        """The body failed while it was being read whole: the app never runs."""
        self.state = DONE
        if self.deadline is not None:
            self.deadline.stop()
        self._release()

    def connection_lost(self) -> None:
        """The client is gone: fail the thread's blocked reads and writes so it can finish."""
        if self.body is not None:
            self.body.stream.fail(ClientDisconnected("client disconnected"))
        self.channel.close()
        if self.deadline is not None and not (self.state is RUNNING and self.call.started_at):
            # (An app that runs on keeps its deadline: if it is stuck, its thread still is.)
            self.deadline.stop()
        if self.state is WAITING or self.state is BUFFERING:
            self.state = DONE
            self._release()  # no job will come back to release it
        if self.sendfile_task is not None:
            self.sendfile_task.cancel()

    # --- the end --------------------------------------------------------------------------------

    def _free_slot(self) -> None:
        self.state = DONE
        self._job_ended()
        self._release()

    def _job_ended(self) -> None:
        if self.deadline is not None:
            self.deadline.job_ended()  # (before release: a spare is given back first)
        if self.ctx.slow_watch is not None:
            self.ctx.slow_watch.discard(self)
        self.ctx.pool.release()

    def _response_ended(self) -> None:
        self.state = DONE
        ctx = self.ctx
        call = self.call
        if call.queue_expired:
            ctx.stats.timeouts["queue"] += 1
        queued = call.started_at - call.queued_at if call.started_at else None
        record(ctx, self.environ, self.request, self.status, self.bytes_out, self.started, self._details, queued)
        self._release()
        self.connection.cycle_finished(self)

    def _details(self) -> Details:
        """What an access-log format other than the default may show of it."""
        started = self.call.started_at
        loan = self.channel.loan  # a client that left after its thread answered it in whole stayed
        return (
            0 if self.body is None else self.body.received,
            started - self.call.queued_at if started else 0.0,
            time.monotonic() - started if started else 0.0,
            self.channel.gone and not (loan is not None and loan.answered),
            self.deadline is not None and self.deadline.timed_out,
        )

    def _release(self) -> None:
        """No thread will use this cycle again: give back the body's bytes, end its wait, and
        drop every reference back to it.

        They are reference cycles (cycle -> channel -> its bound ``deliver``, cycle -> wait or
        deadline -> their owner); breaking them lets a request's objects be freed by reference
        counting as soon as it is done, instead of piling up for the cyclic garbage collector,
        whose pauses show in tail latency (and, under load, whose backlog shows in memory).
        """
        self.channel.detach()
        if self.body is not None:
            self.body.release()
            self.body.stream.detach()
        if self.wait is not None:
            self.wait.end()
            self.wait = None
        self.deadline = None

    # --- for logs and the stats -----------------------------------------------------------------

    def request_line(self) -> str:
        return request_line(self.request)

    def describe(self, now: float) -> str:
        """One line for the log: what the request is, who asked, and how long it has run."""
        environ = self.environ
        client = environ.get("REMOTE_ADDR") or "unix"
        path = environ.get("PATH_INFO", "")
        return f"{environ.get('REQUEST_METHOD')} {path} from {client}, {now - self.started:.1f}s since its head"

    def report(self, now: float, stacks: bool) -> CycleReport:
        state = self.state
        if state is BUFFERING:
            return CycleReport("reading_body", None, 0.0, False)  # the loop reads its body first
        if self.sendfile_task is not None:
            return CycleReport("sending_file", None, 0.0, False)  # its thread is free
        call = self.call
        if self.connection.write_paused:
            name = "writing_blocked"
        else:
            name = "waiting_for_thread" if state is WAITING else "in_app"
        row = None
        if state is RUNNING and call.started_at:
            names = {thread.ident: thread.name for thread in threading.enumerate()}
            row = in_flight(self.environ, now, self.started, call.started_at, names.get(call.thread))
            if stacks:
                row["stack"] = thread_stack(call.thread)
        waiting = state is WAITING or (state is RUNNING and not call.started_at)
        return CycleReport(name, row, call.queued_at if waiting else 0.0, state is RUNNING and waiting)
