"""Notices clients that reset while their request waits for a thread, without reading them. [loop]

A request waiting for a thread (parked, or in the pool's queue) has its connection's reading
paused once more bytes arrive: its body must not pile up in memory. But a paused socket is not
polled, so a client that resets is not noticed until the request's turn comes, and then the app
may run for nobody. A flood of clients that send a head and part of a body, then reset, filled a
server with thousands of such dead connections (issue 15).

This watch keeps every waiting request's socket in one ``select.poll`` set that asks for no
events at all: the kernel still reports POLLERR and POLLHUP, which a reset (or a full close)
raises, but never POLLIN, so nothing is read. One non-blocking ``poll`` every ``INTERVAL``
seconds, while anything waits, covers them all; a half-close (FIN) raises neither, so a client
that shut down its sending side after its request still gets its answer.
"""

from __future__ import annotations

import asyncio
import select
from typing import Dict, Optional, Protocol

# How often the waiting sockets are looked at while any wait; a reset is noticed this late at most.
INTERVAL = 0.05

_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL if hasattr(select, "poll") else 0


class Waiter(Protocol):
    def client_gone(self) -> None:
        """The client reset its connection while the request waited."""


class GoneWatch:
    """The sockets of waiting requests, polled for resets on one loop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._poll = select.poll() if hasattr(select, "poll") else None  # not on Windows: no watch
        self._waiters: Dict[int, Waiter] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self.dropped = 0  # requests given up because their client went while they waited

    def __len__(self) -> int:
        return len(self._waiters)

    def add(self, fd: int, waiter: Waiter) -> None:
        if self._poll is None or fd < 0 or fd in self._waiters:
            return
        self._poll.register(fd, 0)  # no events asked for: only errors and hang-ups are reported
        self._waiters[fd] = waiter
        if self._timer is None:
            self._timer = self._loop.call_later(INTERVAL, self._check)

    def remove(self, fd: int) -> None:
        if self._waiters.pop(fd, None) is not None and self._poll is not None:
            self._poll.unregister(fd)

    def close(self) -> None:
        for fd in list(self._waiters):
            self.remove(fd)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        assert self._poll is not None
        for fd, events in self._poll.poll(0):
            if events & _GONE:
                waiter = self._waiters.get(fd)
                self.remove(fd)
                if waiter is not None:
                    waiter.client_gone()
        if self._waiters:
            self._timer = self._loop.call_later(INTERVAL, self._check)
