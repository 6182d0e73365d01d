"""bridge.Mailbox: callbacks from threads to the loop, one wake-up per batch."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import pytest

from asyncwsgi.wsgi.bridge import Mailbox


class CountingLoop:
    """Counts wake-ups (call_soon_threadsafe) and runs what was scheduled when told to."""

    def __init__(self) -> None:
        self.scheduled: List[Any] = []
        self.errors: List[Any] = []
        self.closed = False

    def call_soon_threadsafe(self, callback, *args):
        if self.closed:
            raise RuntimeError("Event loop is closed")
        self.scheduled.append((callback, args))

    def is_closed(self) -> bool:
        return self.closed

    def call_exception_handler(self, context) -> None:
        self.errors.append(context)

    def run_once(self) -> None:
        ready, self.scheduled = self.scheduled, []
        for callback, args in ready:
            callback(*args)


def test_posts_while_a_batch_is_due_share_its_wake_up_and_keep_their_order():
    loop = CountingLoop()
    mailbox = Mailbox(loop)  # type: ignore[arg-type]
    got: List[int] = []
    for i in range(5):
        mailbox.call_soon_threadsafe(got.append, i)
    assert len(loop.scheduled) == 1  # one wake-up for five callbacks
    loop.run_once()
    assert got == [0, 1, 2, 3, 4]
    mailbox.call_soon_threadsafe(got.append, 5)  # the batch ran: the next post wakes the loop again
    assert len(loop.scheduled) == 1
    loop.run_once()
    assert got == [0, 1, 2, 3, 4, 5]


def test_a_post_made_while_the_batch_runs_is_run_in_it_or_gets_its_own_wake_up():
    loop = CountingLoop()
    mailbox = Mailbox(loop)  # type: ignore[arg-type]
    got: List[str] = []

    def first() -> None:
        got.append("first")
        mailbox.call_soon_threadsafe(got.append, "posted during the batch")

    mailbox.call_soon_threadsafe(first)
    loop.run_once()
    loop.run_once()  # whatever was scheduled meanwhile
    assert got == ["first", "posted during the batch"]
    assert not loop.scheduled and not mailbox._queue


def test_a_callback_that_raises_is_reported_and_the_batch_goes_on():
    loop = CountingLoop()
    mailbox = Mailbox(loop)  # type: ignore[arg-type]
    got: List[int] = []

    def boom() -> None:
        raise ValueError("bug")

    mailbox.call_soon_threadsafe(got.append, 1)
    mailbox.call_soon_threadsafe(boom)
    mailbox.call_soon_threadsafe(got.append, 2)
    loop.run_once()
    assert got == [1, 2]
    assert [type(e["exception"]) for e in loop.errors] == [ValueError]


def test_a_closed_loop_raises_and_a_reopened_mailbox_is_not_stuck():
    loop = CountingLoop()
    mailbox = Mailbox(loop)  # type: ignore[arg-type]
    loop.closed = True
    with pytest.raises(RuntimeError):
        mailbox.call_soon_threadsafe(print)
    assert mailbox.is_closed()
    loop.closed = False  # (a test double: a real loop does not reopen) the flag was not left set
    mailbox.call_soon_threadsafe(print)
    assert len(loop.scheduled) == 1


def test_many_threads_posting_to_a_real_loop_lose_nothing():
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        mailbox = Mailbox(loop)
        seen: List[int] = []
        done = threading.Event()
        total = 8 * 5000

        def record(n: int) -> None:
            seen.append(n)
            if len(seen) == total:
                done.set()

        def post(base: int) -> None:
            for i in range(5000):
                mailbox.call_soon_threadsafe(record, base + i)

        threads = [threading.Thread(target=post, args=(t * 5000,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert done.wait(10), f"{len(seen)} of {total} callbacks ran"
        assert sorted(seen) == list(range(total))
        for t in range(8):  # each thread's callbacks ran in the order it posted them
            mine = [n for n in seen if t * 5000 <= n < (t + 1) * 5000]
            assert mine == sorted(mine)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


def test_a_batch_that_keeps_growing_lets_the_loop_run_between():
    """A callback that posts another (as threads streaming as fast as the loop runs do) must not
    hold the loop in one batch: the loop's own callback runs long before the posts end."""
    order: List[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        mailbox = Mailbox(loop)
        left = [5000]
        done = asyncio.Event()

        def post_again() -> None:
            left[0] -= 1
            if left[0]:
                mailbox.call_soon_threadsafe(post_again)
            else:
                order.append("posts done")
                done.set()

        mailbox.call_soon_threadsafe(post_again)
        loop.call_soon(lambda: order.append("loop ran"))
        await asyncio.wait_for(done.wait(), 10)

    asyncio.run(main())
    assert order == ["loop ran", "posts done"]
