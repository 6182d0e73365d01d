from __future__ import annotations

import threading
from typing import Callable, List, Optional, cast

from asyncwsgi.wsgi.pool import ThreadPool, _Jobs
from tests.helpers import wait_for


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


def _alive(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def test_a_spare_stands_in_for_a_held_thread_then_retires():
    pool = ThreadPool(threads=1, queue_size=0, spares=1, name="spare-test")
    pool.start()
    hold, held, quick = threading.Event(), threading.Event(), threading.Event()
    admitted: List[str] = []

    def holding() -> None:
        held.set()
        hold.wait(5)

    assert pool.try_submit(holding)
    assert held.wait(5)
    assert not pool.try_submit(quick.set)  # the one thread is held, and the queue has no room

    def waiter() -> None:
        admitted.append("waiter")
        pool.admit(quick.set)

    pool.wait_for_slot(waiter)
    assert pool.lend_spare()  # the new slot goes to the waiter at once
    assert admitted == ["waiter"]
    assert quick.wait(5)  # run by the spare while the first thread is still held
    assert (pool.running_threads, pool.spares_out, pool.capacity) == (2, 1, 2)
    assert not pool.lend_spare()  # every spare is out
    pool.release()  # the quick job's slot
    hold.set()
    pool.give_back_spare()  # the held job has ended: one thread too many
    pool.release()
    assert (pool.running_threads, pool.spares_out, pool.capacity, pool.admitted) == (1, 0, 1, 0)
    assert wait_for(lambda: _alive("spare-test") == 1)  # the first idle thread takes the stop and exits
    ran = threading.Event()
    assert pool.try_submit(ran.set)  # the one thread left still serves
    assert ran.wait(5)
    pool.release()
    pool.shutdown()
    assert pool.join(5) == []


def test_no_spares_by_default():
    pool = ThreadPool(threads=2, queue_size=0)
    assert not pool.lend_spare()
    assert (pool.running_threads, pool.capacity) == (2, 2)


def _parked_thread(jobs: _Jobs, ran: List[str], name: str) -> threading.Thread:
    """A thread running jobs from ``jobs`` as the pool's do, until a None job."""

    def work() -> None:
        wake = threading.Lock()
        wake.acquire()
        while True:
            job = jobs.get(wake)
            if job is None:
                return
            ran.append(name)
            job()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    return thread


def test_a_job_wakes_the_thread_idle_most_recently():
    """The warm thread runs the next job: one connection's requests stay on one thread."""
    jobs, ran = _Jobs(), cast(List[str], [])
    first = _parked_thread(jobs, ran, "first")
    assert wait_for(lambda: len(jobs._idle) == 1)
    second = _parked_thread(jobs, ran, "second")
    assert wait_for(lambda: len(jobs._idle) == 2)
    for _ in range(3):
        done = threading.Event()
        jobs.put(done.set)
        assert done.wait(5)
        assert wait_for(lambda: len(jobs._idle) == 2)
    assert ran == ["second"] * 3
    for _ in range(2):
        jobs.put(None)
    first.join(5)
    second.join(5)
    assert not first.is_alive() and not second.is_alive()


def test_every_job_runs_exactly_once_however_puts_and_idling_interleave():
    """Bursts of puts while four threads go idle and wake, each burst put the moment the last
    one finishes (when its thread is between its look at the backlog and its sleep): a job lost
    there would stop the test with every thread asleep, none would be picked up by a later put."""
    jobs, ran = _Jobs(), cast(List[str], [])
    threads = [_parked_thread(jobs, ran, f"t{i}") for i in range(4)]
    counts = [0] * 4000
    lock = threading.Lock()
    finished = threading.Semaphore(0)

    def job_for(index: int) -> Callable[[], None]:
        def job() -> None:
            with lock:
                counts[index] += 1
            finished.release()

        return job

    index = 0
    while index < len(counts):
        burst = range(index, min(len(counts), index + 1 + index % 3))
        for i in burst:
            jobs.put(job_for(i))
        for i in burst:
            assert finished.acquire(timeout=5), f"job {i} of {list(burst)} was lost"
        index = burst[-1] + 1
    assert counts == [1] * len(counts)
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join(5)
    assert not any(thread.is_alive() for thread in threads)
