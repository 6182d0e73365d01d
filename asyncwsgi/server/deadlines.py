"""Coarse deadlines for many connections on one loop timer. [loop]

Every connection has a read-side deadline (keep-alive, head, body, linger). A loop timer per
connection costs about 600 bytes on uvloop (a handle and a libuv timer), which is a fifth of an
idle connection's memory. Instead, connections are filed in time slots of ``resolution``
seconds, and one loop timer fires for the earliest slot. A deadline is therefore met up to one
resolution late, never early; the resolution is derived from the configured timeouts so that
it is small against the shortest of them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Dict, Optional, Protocol, Set


class Owner(Protocol):
    def on_deadline(self) -> None:
        """Called once the slot it was filed in has passed."""


class DeadlineOwner(Protocol):
    def deadline_passed(self) -> None:
        """Called once its ``ReadDeadline`` has passed."""


class DeadlineWheel:
    """Files owners by deadline; calls ``on_deadline`` for each once its slot is due."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float) -> None:
        self._loop = loop
        self.resolution = resolution
        self._slots: Dict[int, Set[Owner]] = {}
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_slot = 0  # the slot self._timer fires for

    def now(self) -> float:
        return self._loop.time()

    def __len__(self) -> int:
        return sum(len(owners) for owners in self._slots.values())

    def add(self, owner: Owner, when: float) -> int:
        """File ``owner`` to be called at ``when`` (or up to one resolution later); return its slot."""
        slot = math.ceil(when / self.resolution)
        owners = self._slots.get(slot)
        if owners is None:
            owners = self._slots[slot] = set()
            if self._timer is None or slot < self._timer_slot:
                self._schedule(slot)
        owners.add(owner)
        return slot

    def slot_time(self, slot: int) -> float:
        return slot * self.resolution

    def remove(self, owner: Owner, slot: int) -> None:
        owners = self._slots.get(slot)
        if owners is not None:
            owners.discard(owner)
            if not owners:
                del self._slots[slot]  # the timer may still fire for it; it finds nothing

    def close(self) -> None:
        self._slots.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        self._timer = self._loop.call_at(self.slot_time(slot), self._fire)

    def _fire(self) -> None:
        self._timer = None
        # Loops round timers to a millisecond or so: a slot that is that close counts as due.
        current = math.floor((self._loop.time() + 0.001) / self.resolution)
        for slot in sorted(s for s in self._slots if s <= current):
            for owner in self._slots.pop(slot, ()):
                owner.on_deadline()
        if self._slots and self._timer is None:
            self._schedule(min(self._slots))


def resolution_for(*timeouts: float) -> float:
    """A tenth of the shortest non-zero timeout, between 5 ms and 0.5 s."""
    positive = [t for t in timeouts if t > 0]
    shortest = min(positive) if positive else 5.0
    return min(0.5, max(0.005, shortest / 10))


# A slot that comes this close to a deadline counts as on time (event loops round timers).
_SLACK_SECONDS = 0.002


class ReadDeadline:
    """One connection's read-side deadline, filed lazily in the server's ``DeadlineWheel``.

    Moving the deadline later (every keep-alive request does) only records the time; when the
    slot it was filed in comes early, it files itself again for what remains. So a busy
    connection costs no timer operation per request. The owner's ``deadline_passed`` is called
    once the deadline has passed; ``stop`` drops the owner (and the reference cycle with it).
    It holds no bound methods: an idle connection's memory is mostly objects like this one.
    """

    __slots__ = ("_owner", "_slot", "_wheel", "when")

    def __init__(self, wheel: DeadlineWheel, owner: DeadlineOwner) -> None:
        self._wheel = wheel
        self._owner: Optional[DeadlineOwner] = owner
        self._slot: Optional[int] = None
        self.when: Optional[float] = None

    def set(self, seconds: float) -> None:
        """The deadline is ``seconds`` from now (0: at once, at the next slot)."""
        wheel = self._wheel
        when = wheel.now() + seconds
        self.when = when
        slot = self._slot
        if slot is not None:
            if wheel.slot_time(slot) <= when:
                return  # our slot comes first; we file again then for the rest
            wheel.remove(self, slot)
        self._slot = wheel.add(self, when)

    def clear(self) -> None:
        """No deadline for now (the slot, if any, is left to come and find nothing)."""
        self.when = None

    def stop(self) -> None:
        """Leave the wheel for good: the connection is over."""
        self.when = None
        self._owner = None
        if self._slot is not None:
            self._wheel.remove(self, self._slot)
            self._slot = None

    def on_deadline(self) -> None:
        """Our slot has come. [loop, from DeadlineWheel]"""
        self._slot = None
        when = self.when
        owner = self._owner
        if when is None or owner is None:
            return
        if self._wheel.now() + _SLACK_SECONDS < when:
            self._slot = self._wheel.add(self, when)  # it moved later since we filed
            return
        self.when = None
        owner.deadline_passed()
