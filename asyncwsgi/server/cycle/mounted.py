"""What the two cycles of a mounted ASGI app share: a request (``asgi``) and a WebSocket
(``websocket``). [loop]

The app runs as a task on the loop, so no thread is taken however long it lasts. Its coroutine
waits on one future (``_wait``) that any event wakes (``_notify``), then looks at what changed.
Bytes read for the app count against --input-buffer-bytes until it takes them (``_hold``,
``_taken``): past that the connection stops reading, the back-pressure ``wsgi.input`` has too.
One access-log line is written when it ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Optional

import h11

from ...asgi.mounts import Mount
from ...types import Environ
from ..access import record, request_line
from ..seam import DONE, PAUSE_BODY, RUNNING, Connection, CycleReport, in_flight

if TYPE_CHECKING:
    from ..context import ServerContext


class MountedCycle:
    """The part of a mounted app's cycle that is about neither HTTP nor WebSocket."""

    __slots__ = (
        "_eof",
        "_held",
        "_holding_back",
        "_wake",
        "connection",
        "ctx",
        "environ",
        "mount",
        "request",
        "started",
        "state",
        "task",
    )

    def __init__(
        self, ctx: ServerContext, connection: Connection, request: h11.Request, environ: Environ, mount: Mount
    ) -> None:
        self.ctx = ctx
        self.connection = connection
        self.request = request
        self.environ = environ  # what the access log reads; the scope is made from it
        self.mount = mount
        self.state = RUNNING
        self.started = time.monotonic()
        self.task: Optional[asyncio.Task[None]] = None
        self._eof = False  # the client half-closed, or left mid-body: the app hears it has gone
        self._wake: Optional[asyncio.Future[None]] = None  # the app's coroutine waits on it
        self._held = 0  # bytes read from the client that wait for the app's receive()
        self._holding_back = False  # the socket is paused until the app takes some of them

    @property
    def done(self) -> bool:
        return self.state is DONE

    # --- the seam's quiet parts: a mounted app never waits for a thread --------------------------

    def client_closed(self, mid_body: bool) -> None:
        """The client half-closed (or left mid-body): the app hears it has gone; what it sends
        still goes out."""
        self._eof = True
        self._notify()

    def client_reset(self) -> None:
        """(Only a request waiting for a thread watches for a reset.)"""

    def writes_blocked(self) -> None:
        """The client stopped reading: sends wait (they read ``connection.write_paused``)."""

    def writes_unblocked(self) -> None:
        self._notify()

    def report(self, now: float, stacks: bool) -> CycleReport:
        """On the loop, no thread: counted as "asgi"; an HTTP request is in flight until it ends."""
        row = in_flight(self.environ, now, self.started, self.started, None)
        row["asgi"] = self.mount.prefix  # the mount it runs under, on the loop
        if stacks and self.task is not None:
            row["stack"] = task_stack(self.task)
        return CycleReport("asgi", row, 0.0, False)

    # --- the body's back-pressure ---------------------------------------------------------------

    def _hold(self, size: int) -> None:
        """``size`` more bytes wait for the app: past --input-buffer-bytes, stop reading the
        socket (as wsgi.input does), so a client cannot outrun an app that reads slowly."""
        self._held += size
        if not self._holding_back and self._held > self.ctx.config.input_buffer_bytes:
            self._holding_back = True
            self.connection.pause_reading(PAUSE_BODY)

    def _taken(self, size: int) -> None:
        """The app took ``size`` bytes: read again once half the buffer is free."""
        self._held -= size
        if self._holding_back and self._held <= self.ctx.config.input_buffer_bytes // 2:
            self._holding_back = False
            self.connection.resume_reading(PAUSE_BODY)

    # --- waking the app's coroutine -------------------------------------------------------------

    async def _wait(self) -> None:
        wake = self._wake
        if wake is None:
            wake = self._wake = self.ctx.loop.create_future()
        await wake

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    # --- the end --------------------------------------------------------------------------------

    def _log(self, status: int, bytes_out: int, bytes_in: int, disconnected: bool, timed_out: bool) -> None:
        """Count the response and write its access-log line."""
        app = time.monotonic() - self.started
        details = (bytes_in, 0.0, app, disconnected, timed_out)
        record(self.ctx, self.environ, self.request, status, bytes_out, self.started, lambda: details)

    def _name(self) -> str:
        return f"{request_line(self.request)} (ASGI app at {self.mount.prefix})"


def task_stack(task: asyncio.Task[None]) -> str:
    """Where a mounted app's coroutine is suspended, outermost first, as a thread stack reads.

    (``Task.print_stack`` shows only the task's own coroutine; the awaited chain is walked here.)
    """
    lines = []
    awaitable: Any = task.get_coro()
    for _ in range(100):  # a bound against a cycle; real chains are a few frames deep
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n')
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return "".join(lines)
