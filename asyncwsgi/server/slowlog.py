"""Thread stacks for the log: --slow-request-log, and the requests cut off at their deadline. [loop]

Nothing is stopped or interrupted. With ``--slow-request-log`` the WSGI cycles whose job is in
the pool are watched (``SlowRequestWatch.add``, until their job ends); at most once a second the
loop looks at them, and one whose app has run longer than the threshold has its thread's current
Python stack logged, with the request's method, path, client and age, once per request.
``sys._current_frames`` reads every thread's innermost frame without pausing it (a few
microseconds for a pool of 8). A request cut off at its deadline is logged the same way
(``cycle/deadline.py``).
"""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from typing import Optional, Protocol, Set

from ..log import error_log
from ..wsgi.app import WSGICall

# The watch looks this often at most, and at least four times per threshold.
_MAX_INTERVAL_SECONDS = 1.0


def thread_stack(ident: int) -> str:
    """The Python stack of thread ``ident`` now, innermost call last ('' if it has ended)."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame))


class Watched(Protocol):
    """A request whose app runs on a thread (``cycle.wsgi.WSGICycle``)."""

    call: WSGICall
    slow_logged: bool  # its stack was logged: not again

    def describe(self, now: float) -> str:
        """One line for the log: what the request is, who asked, and how long it has run."""


class SlowRequestWatch:
    """Logs the stack of each watched request that has been in the app for ``threshold`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float) -> None:
        self._loop = loop
        self._threshold = threshold
        self._interval = min(_MAX_INTERVAL_SECONDS, threshold / 4)
        self._watched: Set[Watched] = set()
        self._timer: Optional[asyncio.TimerHandle] = loop.call_later(self._interval, self._check)

    def add(self, request: Watched) -> None:
        self._watched.add(request)

    def discard(self, request: Watched) -> None:
        self._watched.discard(request)

    def close(self) -> None:
        self._watched.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        now = time.monotonic()
        for request in list(self._watched):
            call = request.call
            if not request.slow_logged and call.started_at and now - call.started_at >= self._threshold:
                request.slow_logged = True
                error_log.warning(
                    "slow request: %s, %.1fs in the app (--slow-request-log); its thread is at:\n%s",
                    request.describe(now),
                    now - call.started_at,
                    thread_stack(call.thread).rstrip(),
                )
        self._timer = self._loop.call_later(self._interval, self._check)
