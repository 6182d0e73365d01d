"""--slow-request-log: the stack of a request's thread, logged once when it runs long. [loop]

Nothing is stopped or interrupted. At most once a second the loop looks at the requests whose
app is running; one older than the threshold has its thread's current Python stack logged,
with the request's method, path, client and age, once per request. ``sys._current_frames``
reads every thread's innermost frame without pausing it (a few microseconds for a pool of 8).
A request cut off at ``--request-timeout`` is logged the same way (``exchange.py``).
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from typing import TYPE_CHECKING, Optional

from ..log import error_log

if TYPE_CHECKING:
    from .context import ServerContext
    from .exchange import Exchange

# The watch looks this often at most, and at least four times per threshold.
_MAX_INTERVAL_SECONDS = 1.0


def thread_stack(ident: int) -> str:
    """The Python stack of thread ``ident`` now, innermost call last ('' if it has ended)."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame))


def describe(exchange: Exchange, now: float) -> str:
    """One line for the log: what the request is, who asked, and how long it has run."""
    environ = exchange.environ
    client = environ.get("REMOTE_ADDR") or "unix"
    path = environ.get("PATH_INFO", "")
    age = now - exchange.started
    return f"{environ.get('REQUEST_METHOD')} {path} from {client}, {age:.1f}s since its head"


class SlowRequestWatch:
    """Logs the stack of each request that has been in the app for ``threshold`` seconds."""

    def __init__(self, ctx: ServerContext, threshold: float) -> None:
        self._ctx = ctx
        self._threshold = threshold
        self._interval = min(_MAX_INTERVAL_SECONDS, threshold / 4)
        self._timer: Optional[asyncio.TimerHandle] = ctx.loop.call_later(self._interval, self._check)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        from .exchange import RUNNING, Exchange  # here: exchange imports the context, which imports us

        now = time.monotonic()
        for protocol in list(self._ctx.connections):
            exchange = protocol.exchange
            if not isinstance(exchange, Exchange) or exchange.state is not RUNNING or exchange.slow_logged:
                continue  # none, or an ASGI request: it holds no thread
            call = exchange.call
            if call.started_at and now - call.started_at >= self._threshold:
                exchange.slow_logged = True
                error_log.warning(
                    "slow request: %s, %.1fs in the app (--slow-request-log); its thread is at:\n%s",
                    describe(exchange, now),
                    now - call.started_at,
                    thread_stack(call.thread).rstrip(),
                )
        self._timer = self._ctx.loop.call_later(self._interval, self._check)
