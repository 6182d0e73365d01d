"""One WSGI request's deadline: --request-timeout, or sooner by --deadline-header. [loop]

Made only for a request that has one. The owner (``wsgi.WSGICycle``) decides what the deadline
means for the client (408 while its body is read, 504 before the response starts, an abort
after); this module keeps the time and deals with the thread, which Python cannot stop:

* at **half** the deadline, an app still running is likely stuck: the pool lends a spare thread
  in its place (``--spare-threads``), so the requests queued behind it run before their own
  deadlines, which come later than its own;
* at the deadline, an app still running is **stuck**: its thread's stack is logged once, its
  output is dropped (its next write raises, its ``close()`` runs), it counts in
  ``ServerContext.stuck`` (a supervised worker whose every thread is stuck is recycled), and
  with ``--interrupt-on-timeout`` ``RequestTimeout`` is raised in its thread
  (``wsgi/interrupt.py``);
* when its job ends, the spare is given back and it no longer counts as stuck.

The app sees the deadline as ``environ["asyncwsgi.deadline"]`` (``time.monotonic()``) and
``environ["asyncwsgi.time_remaining"]()``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Optional, Protocol

from ...log import error_log
from ...types import Environ
from ...wsgi.app import WSGICall
from ...wsgi.bridge import OutputChannel
from ..slowlog import thread_stack

if TYPE_CHECKING:
    from ..context import ServerContext

# --interrupt-on-timeout: how soon to try again when the app's thread is in shielded server
# code (a hand-off to the loop, a few microseconds) at its deadline.
_INTERRUPT_RETRY_SECONDS = 0.01


class Owner(Protocol):
    """The request a deadline belongs to (``wsgi.WSGICycle``)."""

    call: WSGICall
    channel: OutputChannel
    slow_logged: bool

    def in_app(self) -> bool:
        """A thread has started its app, and the request was not answered without it."""

    def deadline_passed(self, detail: str) -> None:
        """The deadline has passed: answer the client as the request's state allows."""

    def describe(self, now: float) -> str: ...


class RequestDeadline:
    """The timers, the spare thread and the stuck state of one request with a deadline."""

    __slots__ = ("_ctx", "_owner", "_timer", "at", "spared", "timed_out", "timeout")

    def __init__(self, owner: Owner, ctx: ServerContext, environ: Environ, started: float, timeout: float) -> None:
        self._owner = owner
        self._ctx = ctx
        self.timeout = timeout
        self.at = started + timeout  # time.monotonic()
        self.spared = False  # the pool lent a spare thread in place of ours
        self.timed_out = False  # stuck past the deadline: the app's output is dropped
        environ["asyncwsgi.deadline"] = self.at
        environ["asyncwsgi.time_remaining"] = _TimeRemaining(self.at)
        if ctx.pool.spares:
            self._timer: Optional[asyncio.TimerHandle] = ctx.loop.call_later(timeout / 2, self._on_half)
        else:
            self._timer = ctx.loop.call_later(timeout, self._on_deadline)

    def detail(self) -> str:
        """What the log and the refusal say of it."""
        config = self._ctx.config
        source = "--request-timeout" if self.timeout == config.request_timeout else config.deadline_header
        return f"request not answered within {source} ({self.timeout:g}s)"

    def stop(self) -> None:
        """No more timers (the request is over, or no thread will run it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def job_ended(self) -> None:
        """The app's job has ended: its thread is back, and so is the spare lent for it."""
        self.stop()
        if self.timed_out:
            self._ctx.stuck.discard(self._owner)
        if self.spared:
            self.spared = False
            self._ctx.pool.give_back_spare()

    def stuck(self) -> None:
        """The app has run past the deadline: log where, drop its output, count its thread as
        stuck (until its job ends), and lend a spare if it has none yet."""
        owner = self._owner
        ctx = self._ctx
        self.timed_out = True
        ctx.stuck.add(owner)  # first: whoever sees the count below sees it stuck
        ctx.stats.timeouts["request"] += 1
        if not owner.slow_logged:
            owner.slow_logged = True
            error_log.warning(
                "%s: %s; its thread is at:\n%s",
                owner.describe(time.monotonic()),
                self.detail(),
                thread_stack(owner.call.thread).rstrip(),
            )
        owner.channel.close()  # the app's next write raises; its close() runs
        self._lend_spare()
        if owner.call.interrupt is not None:
            self._interrupt()

    def _on_half(self) -> None:
        """Half the deadline has passed: an app still running holds its thread long enough to
        be likely stuck, and the requests queued behind it would wait past their own."""
        self._timer = self._ctx.loop.call_later(max(0.0, self.at - time.monotonic()), self._on_deadline)
        self._lend_spare()

    def _on_deadline(self) -> None:
        self._timer = None
        self._owner.deadline_passed(self.detail())

    def _lend_spare(self) -> None:
        if not self.spared and self._owner.in_app():
            self.spared = self._ctx.pool.lend_spare()

    def _interrupt(self) -> None:
        """--interrupt-on-timeout: raise RequestTimeout in the app's thread; while the thread is
        in shielded server code, try again shortly, for as long as the request is stuck."""
        interrupt = self._owner.call.interrupt
        assert interrupt is not None
        if interrupt.fire() is False and self._owner in self._ctx.stuck:
            self._ctx.loop.call_later(_INTERRUPT_RETRY_SECONDS, self._interrupt)


class _TimeRemaining:
    """``environ["asyncwsgi.time_remaining"]()``: seconds left before the deadline (never
    negative), for the app to bound what it waits for (an HTTP call, a lock)."""

    __slots__ = ("_deadline",)

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self) -> float:
        return max(0.0, self._deadline - time.monotonic())
