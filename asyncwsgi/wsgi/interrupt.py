"""``--interrupt-on-timeout``: raise ``RequestTimeout`` in the thread of an app past its deadline.
[both: the loop fires; the app's thread arms, shields and disarms]

CPython's ``PyThreadState_SetAsyncExc`` makes a thread raise at its next check of the eval
breaker (a Python function's entry, a loop's jump back), wherever that is. Two rules keep that
from landing anywhere but the app:

* The loop fires only while the thread is *armed*: inside the app's call, and outside the
  server's shared structures. The thread disarms (``shield``) before it touches one, the
  ``Mailbox`` that every request's hand-offs go through: an exception between its append and its
  wake-up would leave the loop unwoken for every request. Firing and arming share one lock per
  request, which the loop only ever tries (it retries later rather than wait on a thread).
* A fired exception is never cleared with ``PyThreadState_SetAsyncExc(id, NULL)``: on CPython
  3.11 that signals the interpreter's eval breaker with nothing for any thread to take, and
  under a tracer (coverage, profilers, APM agents) every thread then loops at its next function
  call forever (reproduced: a thread calling a function after a "clear" under ``coverage run``
  never returns). Instead, whenever the thread disarms after a fire, it calls an empty function,
  whose entry delivers the exception if it is still pending: at a known point, in the thread's
  own server code, where it propagates to the job (``wsgi.app``) like any other.

And one rule it cannot make safe, so it does not fire at all: while a tracer or profiler is set
(coverage, a debugger, an APM agent's profiler). Those call back into Python code of their own
from every thread, under locks of their own; an exception landing there leaves the lock held
and every thread waiting on it (seen: coverage's ``lock_data`` on Python 3.10, all threads
parked there, in the CI run of the first version of this module).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any, Callable, Optional

from ..errors import RequestTimeout
from ..log import error_log
from .bridge import Mailbox

_current = threading.local()  # [thread] .interrupt: the AppInterrupt of the app it runs, if armed


class AppInterrupt:
    """One request's interruption: armed while its app runs, fired once by the loop."""

    __slots__ = ("_armed", "_fired", "_ident", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self._fired = False
        self._ident = 0

    # --- [thread] ---------------------------------------------------------------------------

    def arm(self) -> None:
        """The app is about to be called on this thread."""
        with self._lock:
            self._ident = threading.get_ident()
            self._armed = not self._fired
        _current.interrupt = self

    def shield(self) -> None:
        """Server code that must not be interrupted follows; a RequestTimeout already fired
        raises here, before it starts."""
        with self._lock:
            self._armed = False
            fired = self._fired
        if fired:
            _deliver_pending()

    def unshield(self) -> None:
        with self._lock:
            self._armed = not self._fired  # fired once, never again

    def disarm(self) -> None:
        """The app has returned (or raised): nothing may land after this. A RequestTimeout still
        pending lands here and is dropped; the job ends as it would have."""
        _current.interrupt = None
        try:
            self.shield()
        except RequestTimeout:
            pass

    # --- [loop] -----------------------------------------------------------------------------

    def fire(self) -> Optional[bool]:
        """Raise RequestTimeout in the app's thread. True: fired. False: not now (the thread is
        in shielded server code, or arming): try again. None: never (it has fired, the app is
        not running, or a tracer or profiler is set)."""
        if tracing():
            _warn_once()
            return None
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._fired or not self._ident:
                return None
            if not self._armed:
                return False
            self._armed = False
            self._fired = True
            return _set_async_exc(self._ident, RequestTimeout) == 1
        finally:
            self._lock.release()


def tracing() -> bool:
    """[any] Whether a tracer or profiler is set, here or for new threads (sys.settrace,
    sys.setprofile, threading.settrace, threading.setprofile)."""
    return (
        sys.gettrace() is not None
        or sys.getprofile() is not None
        or threading.gettrace() is not None
        or threading.getprofile() is not None
    )


_warned = False


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        error_log.warning(
            "--interrupt-on-timeout: not interrupting while a tracer or profiler is set (coverage, a "
            "debugger, a profiling agent): an exception landing in its callbacks could leave its "
            "lock held and every thread waiting"
        )


def _deliver_pending() -> None:
    """Called for its entry: CPython delivers a pending asynchronous exception there."""


def _set_async_exc(ident: int, exc: type) -> int:
    """CPython's C API; the number of threads it was set for (0 or 1). Never called with NULL
    (see the module docstring)."""
    return int(ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc)))


class ShieldedMailbox(Mailbox):
    """The Mailbox of a server with --interrupt-on-timeout: a post from an armed thread is
    shielded, so an interruption never lands between the queue and the loop's wake-up. (Servers
    without the option use the plain Mailbox and pay nothing.)"""

    __slots__ = ()

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:  # [thread]
        interrupt: Optional[AppInterrupt] = getattr(_current, "interrupt", None)
        if interrupt is None:
            Mailbox.call_soon_threadsafe(self, callback, *args)
            return
        interrupt.shield()
        try:
            Mailbox.call_soon_threadsafe(self, callback, *args)
        finally:
            interrupt.unshield()
