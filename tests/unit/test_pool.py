from __future__ import annotations

import threading

from asyncwsgi.wsgi.pool import ThreadPool


def test_admission_is_bounded_and_fifo():
    pool = ThreadPool(threads=1, queue_size=1)
    gate = threading.Event()
    ran = []
    assert pool.try_submit(lambda: (gate.wait(5), ran.append("a")))
    assert pool.try_submit(lambda: ran.append("b"))
    assert not pool.try_submit(lambda: ran.append("never"))  # full: caller must wait
    order = []
    pool.wait_for_slot(lambda: (order.append(1), pool.admit(lambda: ran.append("c"))))
    pool.wait_for_slot(lambda: order.append(2))  # a waiter that no longer wants its slot
    pool.wait_for_slot(lambda: (order.append(3), pool.admit(lambda: ran.append("d"))))
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
    pool.try_submit(lambda: 1 / 0)
    pool.release()
    pool.try_submit(done.set)
    assert done.wait(5)
    pool.shutdown()
    assert pool.join(5) == []
    assert any("unexpected error" in r.getMessage() for r in caplog.records)
