"""Unit tests for the shared deadline wheel (asyncwsgi/server/deadlines.py)."""

from __future__ import annotations

import asyncio
from typing import List

import pytest

from asyncwsgi.server.deadlines import DeadlineWheel, ReadDeadline, resolution_for


class Owner:
    def __init__(self, loop: asyncio.AbstractEventLoop, log: List[tuple]) -> None:
        self.loop = loop
        self.log = log

    def on_deadline(self) -> None:
        self.log.append((self, self.loop.time()))


@pytest.mark.asyncio
async def test_owners_fire_in_order_never_early_at_most_a_slot_late():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.02)
    log: List[tuple] = []
    a, b, c = Owner(loop, log), Owner(loop, log), Owner(loop, log)
    now = loop.time()
    wheel.add(b, now + 0.10)
    wheel.add(a, now + 0.05)
    wheel.add(c, now + 0.10)
    assert len(wheel) == 3
    await asyncio.sleep(0.2)
    assert log[0][0] is a and {log[1][0], log[2][0]} == {b, c}
    assert log[0][1] >= now + 0.05 - 0.002 and log[0][1] <= now + 0.05 + 0.02 + 0.05
    assert all(when >= now + 0.10 - 0.002 for owner, when in log[1:])
    assert len(wheel) == 0


@pytest.mark.asyncio
async def test_removed_owner_never_fires_and_empty_wheel_stops_ticking():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    log: List[tuple] = []
    owner = Owner(loop, log)
    slot = wheel.add(owner, loop.time() + 0.03)
    wheel.remove(owner, slot)
    await asyncio.sleep(0.08)
    assert log == []
    assert wheel._timer is None  # nothing left to wait for


@pytest.mark.asyncio
async def test_earlier_slot_reschedules_the_timer():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    log: List[tuple] = []
    late, early = Owner(loop, log), Owner(loop, log)
    now = loop.time()
    wheel.add(late, now + 5.0)
    wheel.add(early, now + 0.03)
    await asyncio.sleep(0.1)
    assert [owner for owner, _ in log] == [early]
    wheel.close()
    assert wheel._timer is None and len(wheel) == 0


@pytest.mark.asyncio
async def test_owner_may_refile_itself_from_its_callback():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    fired: List[float] = []

    class Again:
        def on_deadline(self) -> None:
            fired.append(loop.time())
            if len(fired) < 3:
                wheel.add(self, loop.time() + 0.02)

    wheel.add(Again(), loop.time() + 0.02)
    await asyncio.sleep(0.2)
    assert len(fired) == 3


@pytest.mark.parametrize(
    "timeouts,expected",
    [((5.0, 10.0, 30.0, 2.0), 0.2), ((0.3, 10.0), 0.03), ((0.01,), 0.005), ((600.0, 0.0), 0.5), ((0.0,), 0.5)],
)
def test_resolution_is_a_tenth_of_the_shortest_timeout_within_bounds(timeouts, expected):
    assert resolution_for(*timeouts) == pytest.approx(expected)


class Connection:
    """A ReadDeadline's owner: records when its deadline passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.passed: List[float] = []

    def deadline_passed(self) -> None:
        self.passed.append(self.loop.time())


@pytest.mark.asyncio
async def test_read_deadline_moved_later_keeps_its_slot_and_passes_at_the_new_time():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    owner = Connection(loop)
    deadline = ReadDeadline(wheel, owner)
    start = loop.time()
    deadline.set(0.03)
    deadline.set(0.08)  # later: only recorded, no second filing
    assert len(wheel) == 1
    await asyncio.sleep(0.05)
    assert owner.passed == []  # the first slot came and filed it again
    assert len(wheel) == 1
    await asyncio.sleep(0.1)
    assert len(owner.passed) == 1
    assert owner.passed[0] >= start + 0.08 - 0.002
    assert deadline.when is None and len(wheel) == 0


@pytest.mark.asyncio
async def test_read_deadline_moved_earlier_is_filed_again():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    owner = Connection(loop)
    deadline = ReadDeadline(wheel, owner)
    start = loop.time()
    deadline.set(5.0)
    deadline.set(0.02)
    assert len(wheel) == 1  # the late filing was removed
    await asyncio.sleep(0.08)
    assert len(owner.passed) == 1 and owner.passed[0] < start + 1.0


@pytest.mark.asyncio
async def test_read_deadline_cleared_or_stopped_never_passes():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    cleared, stopped = Connection(loop), Connection(loop)
    a, b = ReadDeadline(wheel, cleared), ReadDeadline(wheel, stopped)
    a.set(0.02)
    b.set(0.02)
    a.clear()
    b.stop()
    assert len(wheel) == 1  # stop leaves the wheel at once; clear leaves the slot to lapse
    await asyncio.sleep(0.06)
    assert cleared.passed == [] and stopped.passed == []
    assert len(wheel) == 0
    b.on_deadline()  # a stale slot after stop: the owner is gone, nothing is called
    assert stopped.passed == []


@pytest.mark.asyncio
async def test_read_deadline_of_zero_passes_at_the_next_slot():
    loop = asyncio.get_running_loop()
    wheel = DeadlineWheel(loop, 0.01)
    owner = Connection(loop)
    ReadDeadline(wheel, owner).set(0)
    await asyncio.sleep(0.03)
    assert len(owner.passed) == 1
