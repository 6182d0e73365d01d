"""wsgi/interrupt.py: RequestTimeout lands in the app or at a shield, never half-way into shared
server code; nothing is left pending; nothing fires while a tracer is set.

Each case runs in a fresh interpreter: the suite itself runs under coverage's tracer, where the
interrupt refuses to fire (and firing would risk the tracer's own lock)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.proc import ROOT

# On 3.13 and later an interruption can skip the try around a loop (CPython gh-139622), and the
# server refuses --interrupt-on-timeout there (config.py).
pytestmark = pytest.mark.skipif(sys.version_info >= (3, 13), reason="--interrupt-on-timeout refused here")

_PRELUDE = """
import sys, threading, time
from asyncwsgi.errors import RequestTimeout
from asyncwsgi.wsgi.interrupt import AppInterrupt

interrupt = AppInterrupt()
armed = threading.Event()
seen = []

def start(app):  # run app on a thread of its own; return once it has armed the interrupt
    thread = threading.Thread(target=app)
    thread.start()
    armed.wait(10)
    return thread

def fire_until_it_lands():
    for _ in range(5000):
        if interrupt.fire():
            return True
        time.sleep(0.001)
    return False
"""


def _run(script: str) -> str:
    code = _PRELUDE + textwrap.dedent(script)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_fire_needs_an_armed_unshielded_thread_and_fires_once():
    assert (
        _run("""
        go, done = threading.Event(), threading.Event()
        first = interrupt.fire()  # never armed: no app is running

        def app():
            interrupt.arm()
            interrupt.shield()  # in server code: not now
            armed.set()
            go.wait(10)
            interrupt.unshield()
            try:
                while not done.is_set():  # the app's own Python code
                    pass
            except RequestTimeout:
                seen.append("app")
            interrupt.disarm()

        thread = start(app)
        shielded = interrupt.fire()
        go.set()
        landed = fire_until_it_lands()
        thread.join(10)
        done.set()
        print(first, shielded, landed, seen, interrupt.fire())
    """)
        == "None False True ['app'] None"
    )


def test_a_pending_interrupt_lands_at_the_shield_not_inside_the_shared_code():
    """Fired while the thread blocks in C (the exception waits for its next Python call), it
    is delivered at the shield's entry; the code the shield guards never starts."""
    assert (
        _run("""
        blocked = threading.Lock()
        blocked.acquire()

        def app():
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

        thread = start(app)
        fired = interrupt.fire()
        blocked.release()
        thread.join(10)
        print(fired, seen)
    """)
        == "True ['landed at the shield']"
    )


def test_after_an_interrupt_a_traced_thread_still_runs():
    """Clearing a fired exception with PyThreadState_SetAsyncExc(id, NULL), as the first
    version did, leaves CPython 3.11's eval breaker set with nothing to deliver; a thread that is
    traced from then on loops at its next call forever."""
    assert (
        _run("""
        def work():
            return 1

        def tracer(frame, event, arg):
            return tracer

        def app():
            interrupt.arm()
            armed.set()
            try:
                while True:
                    work()
            except RequestTimeout:
                pass
            interrupt.disarm()
            sys.settrace(tracer)  # from here on, every call and line of this thread is traced
            for _ in range(100000):
                work()
            sys.settrace(None)
            seen.append("done")

        thread = start(app)
        fire_until_it_lands()
        thread.join(15)
        print(seen)
    """)
        == "['done']"
    )


def test_nothing_fires_while_a_tracer_is_set():
    assert (
        _run("""
        threading.settrace(lambda *args: None)  # as coverage does, for every new thread
        stop = threading.Event()

        def app():
            interrupt.arm()
            armed.set()
            try:
                while not stop.is_set():
                    pass
            except RequestTimeout:
                seen.append("interrupted")
            interrupt.disarm()

        thread = start(app)
        fired = interrupt.fire()
        time.sleep(0.1)
        stop.set()
        thread.join(10)
        print(fired, seen)
    """)
        == "None []"
    )
