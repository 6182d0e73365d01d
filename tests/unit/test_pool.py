from __future__ import annotations

import threading
from typing import Callable, List, Optional

from asyncwsgi.wsgi.pool import ThreadPool


def test_admission_is_bounded_and_fifo():
    pool = ThreadPool(threads=1, queue_size=1)
    gate = threading.Event()
    ran: List[str] = []
    order: List[int] = []

    def job(name: str, wait: bool = False) -> Callable[[], None]:
        def run() -> None:
            if wait:
                gate.wait(5)
            ran.append(name)

        return run

    def waiter(number: int, admits: Optional[str]) -> Callable[[], None]:
        def take_slot() -> None:
            order.append(number)
            if admits is not None:
                pool.admit(job(admits))

        return take_slot

    assert pool.try_submit(job("a", wait=True))
    assert pool.try_submit(job("b"))
    assert not pool.try_submit(job("never"))  # full: caller must wait
    pool.wait_for_slot(waiter(1, "c"))
    pool.wait_for_slot(waiter(2, None))  # a waiter that no longer wants its slot
    pool.wait_for_slot(waiter(3, "d"))
    assert not pool.try_submit(lambda: None)  # newcomers queue behind waiters
    pool.start()
    gate.set()
    pool.release()  # "a" done: the first waiter takes the slot
    assert order == [1]
    pool.release()  # "b" done: waiter 2 declines, waiter 3 takes it
    assert order == [1, 2, 3]
    assert pool.admitted == 2 and pool.waiting == 0
    pool.shutdown()
    assert pool.join(5) == []
    assert ran == ["a", "b", "c", "d"]


def test_job_exception_does_not_kill_thread(caplog):
    pool = ThreadPool(threads=1, queue_size=0)
    pool.start()
    done = threading.Event()

    def broken() -> None:
        raise ZeroDivisionError("a job that raises")

    pool.try_submit(broken)
    pool.release()
    pool.try_submit(done.set)
    assert done.wait(5)
    pool.shutdown()
    assert pool.join(5) == []
    assert any("unexpected error" in r.getMessage() for r in caplog.records)
