"""What the two loop-side exchanges of a mounted ASGI app share. [loop]

``asgi_exchange.ASGIExchange`` (an HTTP request) and ``websocket.WebSocketSession`` stand where an
``exchange.Exchange`` stands for a WSGI request. The protocol talks to an exchange's body stream
(``fail``) and its output channel (``pause``, ``resume``, ``mark_gone``); for these exchanges both
are the exchange itself. The app's coroutine waits on one future (``_wait``) that any event wakes
(``_notify``) and then looks at what changed. Bytes read for the app count against
--input-buffer-bytes until it takes them (``_hold``, ``_taken``). One access-log line is written
when it ends.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Optional

import h11

from ..accesslog import AccessRecord, log_access
from ..asgi.mounts import Mount
from ..types import Environ
from .exchange import RUNNING, request_line

if TYPE_CHECKING:
    from .protocol import HTTPProtocol


class MountedExchange:
    """The part of a mounted app's exchange that is not about HTTP or WebSocket."""

    local = None  # never a probe: the loop answers those before mounts are looked at

    __slots__ = (
        "_eof",
        "_held",
        "_holding_back",
        "_wake",
        "bytes_out",
        "environ",
        "mount",
        "protocol",
        "request",
        "started",
        "state",
        "status",
        "task",
    )

    def __init__(self, protocol: HTTPProtocol, request: h11.Request, environ: Environ, mount: Mount) -> None:
        self.protocol = protocol
        self.request = request
        self.environ = environ  # what the access log reads; the scope is made from it
        self.mount = mount
        self.state = RUNNING
        self.status = 0
        self.bytes_out = 0
        self.started = time.monotonic()
        self.task: Optional[asyncio.Task[None]] = None
        self._eof = False  # the client half-closed, or left mid-body: the app hears it has gone
        self._wake: Optional[asyncio.Future[None]] = None  # the app's coroutine waits on it
        self._held = 0  # bytes read from the client that wait for the app's receive()
        self._holding_back = False  # the socket is paused until the app takes some of them

    @property
    def body(self) -> Any:
        return self

    @property
    def channel(self) -> Any:
        return self

    def socket_unread(self) -> None:
        """The socket is paused; a mounted app's task waits for no thread, so nothing to watch."""

    def mark_gone(self) -> None:
        """The client half-closed: the app hears it has gone; what it sends still goes out."""
        self._eof = True
        self._notify()

    def pause(self) -> None:
        """The client stopped reading: sends wait (they read protocol.write_paused)."""

    def resume(self) -> None:
        self._notify()

    def abandon(self) -> None:
        """(Only a WSGI exchange that buffers its body is abandoned.)"""

    def _hold(self, size: int) -> None:
        """``size`` more bytes wait for the app: past --input-buffer-bytes, stop reading the
        socket (as wsgi.input does), so a client cannot outrun an app that reads slowly."""
        self._held += size
        if not self._holding_back and self._held > self.protocol.ctx.config.input_buffer_bytes:
            self._holding_back = True
            self.protocol.pause_reading_body()

    def _taken(self, size: int) -> None:
        """The app took ``size`` bytes: read again once half the buffer is free."""
        self._held -= size
        if self._holding_back and self._held <= self.protocol.ctx.config.input_buffer_bytes // 2:
            self._holding_back = False
            self.protocol.resume_reading_body()

    async def _wait(self) -> None:
        wake = self._wake
        if wake is None:
            wake = self._wake = self.protocol.ctx.loop.create_future()
        await wake

    def _notify(self) -> None:
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    def _log(self, bytes_in: int, disconnected: bool, timed_out: bool) -> None:
        """Count the response and write its access-log line."""
        ctx = self.protocol.ctx
        if self.status:
            ctx.stats.response(self.status)
        if ctx.config.access_log:
            duration = time.monotonic() - self.started
            record = AccessRecord(
                environ=self.environ,
                request_line=request_line(self.request),
                status=self.status,
                bytes_out=self.bytes_out,
                bytes_in=bytes_in,
                duration=duration,
                queue=0.0,
                app=duration,
                disconnected=disconnected,
                timed_out=timed_out,
            )
            log_access(ctx.access_formatter.format(record), ctx.loop)

    def _name(self) -> str:
        return f"{request_line(self.request)} (ASGI app at {self.mount.prefix})"
