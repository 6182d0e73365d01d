"""wsgi/interrupt.py: RequestTimeout lands in the app or at a shield, never half-way into shared
server code, and nothing is left pending that could wedge a traced interpreter."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import List

import pytest

from asyncwsgi.errors import RequestTimeout
from asyncwsgi.wsgi.interrupt import AppInterrupt
from tests.helpers import WAIT
from tests.proc import ROOT

# On 3.13 and later an interruption can skip the try around a loop (CPython gh-139622), and the
# server refuses --interrupt-on-timeout there (config.py).
pytestmark = pytest.mark.skipif(sys.version_info >= (3, 13), reason="--interrupt-on-timeout refused here")


def test_fire_needs_an_armed_thread_and_fires_once():
    interrupt = AppInterrupt()
    assert interrupt.fire() is None  # never armed: no app is running
    armed, go, done = threading.Event(), threading.Event(), threading.Event()
    seen: List[str] = []

    def app_thread() -> None:
        interrupt.arm()
        interrupt.shield()  # in server code: not now
        armed.set()
        go.wait(WAIT)
        interrupt.unshield()
        try:
            while not done.is_set():  # the app's own Python code
                pass
        except RequestTimeout:
            seen.append("app")
        interrupt.disarm()

    thread = threading.Thread(target=app_thread)
    thread.start()
    assert armed.wait(WAIT)
    assert interrupt.fire() is False  # shielded: try again later
    go.set()
    for _ in range(1000):
        fired = interrupt.fire()
        if fired:
            break
        done.wait(0.001)
    assert fired is True
    thread.join(WAIT)
    done.set()
    assert seen == ["app"]
    assert interrupt.fire() is None  # once only


def test_a_pending_interrupt_lands_at_the_shield_not_inside_the_shared_code():
    """Fired while the thread blocks in C (the exception waits for its next Python call), it
    is delivered at the shield's entry; the code the shield guards never starts."""
    interrupt = AppInterrupt()
    blocked = threading.Lock()
    blocked.acquire()
    armed = threading.Event()
    seen: List[str] = []

    def app_thread() -> None:
        interrupt.arm()
        armed.set()
        try:
            blocked.acquire()  # C: no Python code runs while it waits
            interrupt.shield()
            seen.append("guarded code ran")
            interrupt.unshield()
        except RequestTimeout:
            seen.append("landed at the shield")
        interrupt.disarm()

    thread = threading.Thread(target=app_thread)
    thread.start()
    assert armed.wait(WAIT)
    assert interrupt.fire() is True
    blocked.release()
    thread.join(WAIT)
    assert seen == ["landed at the shield"]


_UNDER_A_TRACER = """
import sys, threading
from asyncwsgi.errors import RequestTimeout
from asyncwsgi.wsgi.interrupt import AppInterrupt

def tracer(frame, event, arg):
    return tracer  # like coverage: every call and line is traced

def work():
    return 1

interrupt = AppInterrupt()
armed = threading.Event()
result = []

def app_thread():
    interrupt.arm()
    armed.set()
    try:
        while True:
            work()
    except RequestTimeout:
        pass
    interrupt.disarm()
    for _ in range(100000):  # after a fired interrupt, calls still return
        work()
    result.append("done")

threading.settrace(tracer)
thread = threading.Thread(target=app_thread)
thread.start()
armed.wait(10)
while not interrupt.fire():
    pass
thread.join(15)
print(result[0] if result else "hung")
"""


def test_nothing_is_left_pending_to_wedge_a_traced_thread():
    """Clearing a fired exception with PyThreadState_SetAsyncExc(id, NULL), as the first
    version did, leaves CPython 3.11's eval breaker set with nothing to deliver, and under a
    tracer the thread then loops at its next call forever."""
    out = subprocess.run([sys.executable, "-c", _UNDER_A_TRACER], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "done", out.stderr
