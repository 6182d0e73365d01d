"""A bounded pool of threads that run WSGI apps.
[both: admission on the loop; the job loop on its threads]

Admission is decided on the loop thread alone, so it needs no lock: at most
``threads + queue_size`` jobs are admitted (running or queued) at once. A caller that finds
the pool full registers a waiter and stops reading its connection; that is how saturation
turns into TCP back-pressure instead of an unbounded queue (``ThreadPoolExecutor.submit``
would queue forever). A slot is released on the loop thread when the job's last hand-off
arrives there, which every job sends exactly once (see ``bridge.OutputChannel.finish``).

Spare threads (``--spare-threads``): Python cannot stop a thread stuck in the app, so a request
that holds its thread past half its deadline (``--request-timeout``) is lent a spare: one more thread and
one more slot, so the requests queued behind it run before their own deadlines. When that
request's job ends, the pool gives the spare back: one thread too many, and whichever is idle
first exits. At most ``spares`` are out at a time; past that, stuck requests shrink the pool
(and a supervised worker is recycled, see ``process/cli.py``).
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque, List, Optional

from ..log import error_log

Job = Callable[[], None]
Waiter = Callable[[], None]
"""Called on the loop when a slot frees; it calls ``admit`` if it still wants the slot."""

_STOP = None


class _Jobs:
    """Jobs to threads, one wake-up each: a job wakes the thread idle most recently (its stack
    and caches are warm), and a thread that finishes takes the next job without sleeping. [both]

    A ``queue.SimpleQueue`` shared by every thread hands jobs round the threads in turn: at one
    connection with 8 threads, 11.3 context switches per request against 6.9 with one thread
    (``perf stat --per-thread``), 17,250 against 18,838 requests in 4 s.

    With it, one connection: 7.0 switches per request, and 13-18% more requests a second; 50 and
    256 connections level (medians of 8 and 10 alternated rounds within 3%).

    No lock of its own: each step is one operation on a deque or a list, which the GIL makes
    atomic (as ``bridge.Mailbox`` relies on), so the loop never waits for a pool thread that was
    preempted holding a lock. The races between ``put`` and a thread going idle are closed by
    looking at the backlog again after joining the idle list.
    """

    __slots__ = ("_backlog", "_idle")

    def __init__(self) -> None:
        self._backlog: Deque[Optional[Job]] = collections.deque()
        self._idle: List[threading.Lock] = []  # a stack of idle threads' wake locks (held while asleep)

    def put(self, job: Optional[Job]) -> None:  # [any]
        self._backlog.append(job)
        try:
            wake = self._idle.pop()
        except IndexError:
            return  # every thread is busy (or about to look again): the first free takes it
        wake.release()

    def get(self, wake: threading.Lock) -> Optional[Job]:  # [thread; ``wake`` is held]
        backlog, idle = self._backlog, self._idle
        while True:
            try:
                return backlog.popleft()
            except IndexError:
                pass
            idle.append(wake)
            if backlog:  # a put came in between: take ourselves back if no put has yet
                try:
                    idle.remove(wake)
                    continue
                except ValueError:
                    pass  # a put took us and releases ``wake``
            wake.acquire()


class ThreadPool:
    """N threads fed from one queue; bounded admission decided on the loop thread."""

    def __init__(self, threads: int, queue_size: int, spares: int = 0, name: str = "asyncwsgi-thread") -> None:
        self.threads = threads
        self.spares = spares
        self.capacity = threads + queue_size
        self._name = name
        self._jobs = _Jobs()
        self._workers: List[threading.Thread] = []
        self._started = 0  # threads ever started, for their names
        self._admitted = 0  # [loop] jobs admitted and not yet released
        self._spares_out = 0  # [loop] spares lent and not yet given back
        self._waiters: Deque[Waiter] = collections.deque()  # [loop]

    # --- [loop] -----------------------------------------------------------------------------

    @property
    def admitted(self) -> int:
        return self._admitted

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_submit(self, job: Job) -> bool:
        """Run ``job`` on a thread if a slot is free; False means the caller must wait."""
        if self._admitted >= self.capacity or self._waiters:
            return False
        self._admitted += 1
        self._jobs.put(job)
        return True

    def wait_for_slot(self, waiter: Waiter) -> None:
        """Call ``waiter`` once a slot may be free, in FIFO order; it decides whether to ``admit``."""
        self._waiters.append(waiter)

    def release(self) -> None:
        """A job has finished: hand its slot to the oldest waiter that still wants one."""
        self._admitted -= 1
        if self._waiters:  # (checked here: a call per request costs, and most find none)
            self._hand_out_slots()

    def _hand_out_slots(self) -> None:
        while self._waiters and self._admitted < self.capacity:
            waiter = self._waiters.popleft()
            waiter()

    def admit(self, job: Job) -> None:
        """Submit ``job`` from inside a waiter callback (the slot is known to be free)."""
        self._admitted += 1
        self._jobs.put(job)

    @property
    def spares_out(self) -> int:
        return self._spares_out

    @property
    def running_threads(self) -> int:
        """Threads meant to be running: ``threads`` plus the spares lent (a retired spare's
        thread exits when it is next idle)."""
        return self.threads + self._spares_out

    def lend_spare(self) -> bool:
        """A job holds its thread past half its deadline: start a thread, with a slot, to stand
        in for it. False when every spare is out; then the pool is one thread short until the
        job ends."""
        if self._spares_out >= self.spares:
            return False
        self._spares_out += 1
        self.capacity += 1
        self._workers = [t for t in self._workers if t.is_alive()]
        self._start_thread()
        self._hand_out_slots()  # the new slot goes to the oldest waiter
        return True

    def give_back_spare(self) -> None:
        """The job a spare stood in for has ended (call before its ``release``): one thread too
        many now, and the first to be idle exits."""
        self._spares_out -= 1
        self.capacity -= 1
        self._jobs.put(_STOP)

    # --- [main / loop] lifecycle ------------------------------------------------------------

    def start(self) -> None:
        for _ in range(self.threads):
            self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(target=self._work, name=f"{self._name}-{self._started}", daemon=True)
        self._started += 1
        thread.start()
        self._workers.append(thread)

    def shutdown(self) -> None:
        """Ask every thread to exit once it is idle. Does not wait (an app may be stuck)."""
        self._waiters.clear()
        for _ in self._workers:
            self._jobs.put(_STOP)

    def join(self, timeout: float) -> List[threading.Thread]:
        """Wait up to ``timeout`` seconds in total; return the threads still running."""
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._workers if t.is_alive()]
        self._workers = alive
        return alive

    # --- [thread] ---------------------------------------------------------------------------

    def _work(self) -> None:
        jobs = self._jobs
        wake = threading.Lock()
        wake.acquire()  # held while this thread has nothing to do
        while True:
            job = jobs.get(wake)
            if job is _STOP:
                return
            try:
                job()
            except BaseException:  # a job must never kill its thread
                error_log.exception("unexpected error in thread")
