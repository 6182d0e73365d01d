"""An open WebSocket on the wire: frames in and out, keep-alive pings, the close handshake. [loop]

Made by ``websocket.WebSocketSession`` when the app accepts; from then on the connection feeds
it every byte (``seam.Upgraded``). The frames are wsproto's (the parser with its close codes,
permessage-deflate); this module keeps the connection's rules around them:

* a message is handed over whole (``Listener.received``); one over ``--ws-max-size`` is closed
  with 1009 as soon as a frame header says so (``http.wsframes``), or as it inflates;
* pings are answered; with ``--ws-ping-interval`` we ping, and a client that has not answered
  within ``--ws-ping-timeout`` is closed with 1011;
* a close frame is answered and the TCP connection closed (the server closes first, RFC 6455
  §7.1.1); after ours, the client has ``_CLOSE_TIMEOUT_SECONDS`` to answer.

Its states: OPEN, CLOSING (we sent a close frame), CLOSED (the listener has heard ``closed``).
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol

from ...http.wsframes import FrameSizeWatch
from ...log import error_log
from ..seam import Connection

if TYPE_CHECKING:
    from ..context import ServerContext

try:  # the optional extra asyncwsgi[ws]; without it no stream is ever made
    from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
except ImportError:  # pragma: no cover - exercised by the test that hides wsproto
    pass

# Seconds we wait for the client's close frame after sending ours, before closing the socket.
_CLOSE_TIMEOUT_SECONDS = 5.0
# With permessage-deflate, bytes are fed to the decompressor this many at a time, so one read
# cannot inflate to more than about 1,000 times this (deflate's limit) before --ws-max-size is
# checked.
_DEFLATE_FEED_BYTES = 4096


class StreamState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


OPEN, CLOSING, CLOSED = StreamState


class Listener(Protocol):
    """Who hears what comes in (the session, which hands it to the app)."""

    def received(self, event: Dict[str, Any]) -> None:
        """A whole message, as a ``websocket.receive`` event."""

    def closing(self) -> None:
        """We sent our close frame: nothing more goes out (a send that waits stops waiting)."""

    def closed(self, code: int, reason: str) -> None:
        """The stream is over (1006 and no reason when no close frame came)."""


class WebSocketStream:
    """One open WebSocket: wsproto's frames, held to the server's limits."""

    __slots__ = (
        "_close_timer",
        "_connection",
        "_ctx",
        "_deflate",
        "_listener",
        "_message",
        "_message_size",
        "_name",
        "_ping_timer",
        "_pong_due",
        "_sizes",
        "_ws",
        "bytes_out",
        "close_code",
        "state",
    )

    def __init__(
        self, ctx: ServerContext, connection: Connection, ws: Any, listener: Listener, deflate: bool, name: str
    ) -> None:
        self._ctx = ctx
        self._name = name  # for log lines
        self._connection = connection
        self._ws = ws  # wsproto's WSConnection, past the handshake
        self._listener = listener
        self._deflate = deflate  # permessage-deflate was agreed
        self._sizes = FrameSizeWatch(ctx.config.ws_max_size)
        self._message: List[Any] = []  # the fragments of a message in progress
        self._message_size = 0
        self._ping_timer: Optional[asyncio.TimerHandle] = None
        self._pong_due = 0.0  # loop time by which the last ping's pong must come (0: none due)
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self.state = OPEN
        self.close_code = 1006  # the code we sent or were sent; 1006 if no close frame came
        self.bytes_out = 0  # frame bytes written, for the access log
        interval = ctx.config.ws_ping_interval
        if interval:
            self._ping_timer = ctx.loop.call_later(interval, self._ping)

    # --- from the connection (seam.Upgraded) ------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.state is CLOSED:
            return  # the close handshake is over: what else comes is dropped
        too_large = self._sizes.feed(data)
        if too_large is not None:
            data = data[:too_large]  # the frames before it still count
        step = _DEFLATE_FEED_BYTES if len(data) > _DEFLATE_FEED_BYTES and self._deflate else len(data)
        for offset in range(0, len(data), step or 1):
            self._ws.receive_data(data[offset : offset + step])
            self._take_events()
            if self.state is CLOSED:
                return
        if too_large is not None:
            # The client cannot answer our close until its frame ends, which may be never: the
            # app hears 1009 now, and the connection half-closes and discards what comes.
            self.close(1009, f"message over {self._ctx.config.ws_max_size} bytes")
            self._closed(1009, "")
            self._connection.linger()

    def feed_eof(self) -> None:
        """The client closed its side without a close frame: 1006."""
        self._closed(1006, "")
        self._connection.close()

    def going_away(self) -> None:
        """The server drains: 1001."""
        self.close(1001, "server shutting down")

    # --- from the session -----------------------------------------------------------------------

    def send(self, data: Any) -> None:
        """A message: text (str) or binary (bytes)."""
        self._write(self._ws.send(Message(data=data)))

    def close(self, code: int, reason: str) -> None:
        """Send our close frame; the client's answer (or the close timer) ends the stream."""
        if self.state is not OPEN:
            return
        self.close_code = code
        self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self.state = CLOSING
        self._stop_timers()
        self._close_timer = self._ctx.loop.call_later(_CLOSE_TIMEOUT_SECONDS, self._connection.close)
        self._listener.closing()

    def connection_lost(self) -> None:
        self._closed(self.close_code, "")
        self._stop_timers()

    # --- frames ---------------------------------------------------------------------------------

    def _take_events(self) -> None:
        ws = self._ws
        max_size = self._ctx.config.ws_max_size
        for event in ws.events():
            if isinstance(event, Message):
                self._message.append(event.data)
                self._message_size += len(event.data)
                if self._message_size > max_size:
                    self._message = []
                    self.close(1009, f"message over {max_size} bytes")
                    return
                if event.message_finished:
                    pieces, self._message, self._message_size = self._message, [], 0
                    if isinstance(event, TextMessage):
                        self._listener.received({"type": "websocket.receive", "text": "".join(pieces)})
                    else:
                        assert isinstance(event, BytesMessage)
                        self._listener.received({"type": "websocket.receive", "bytes": b"".join(pieces)})
            elif isinstance(event, Ping):
                self._write(ws.send(event.response()))
            elif isinstance(event, Pong):
                self._pong_due = 0.0
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
                if self.state is OPEN:
                    self._write(ws.send(event.response()))  # answer it (RFC 6455 §5.5.1)
                self._closed(event.code, event.reason or "")
                self._connection.close()  # the server closes the TCP connection first (§7.1.1)
                return

    def _closed(self, code: int, reason: str) -> None:
        if self.state is CLOSED:
            return
        self.state = CLOSED
        self.close_code = code
        self._stop_timers()
        self._listener.closed(code, reason)

    def _write(self, data: bytes) -> None:
        if data and not self._connection.closing:
            self.bytes_out += len(data)
            self._connection.write(data)

    # --- keep-alive -----------------------------------------------------------------------------

    def _ping(self) -> None:
        self._ping_timer = None
        if self.state is not OPEN:
            return
        ctx = self._ctx
        loop = ctx.loop
        if self._pong_due and loop.time() >= self._pong_due:
            ctx.stats.timeouts["ws_ping"] += 1
            error_log.info("%s: no pong within --ws-ping-timeout; closing", self._name)
            self.close(1011, "keepalive ping timeout")
            return
        timeout = ctx.config.ws_ping_timeout
        if not self._pong_due:
            self._write(self._ws.send(Ping(payload=b"%d" % int(loop.time() * 1000))))
            if timeout:
                self._pong_due = loop.time() + timeout
        interval = ctx.config.ws_ping_interval
        wait = interval if not self._pong_due else min(interval, max(0.0, self._pong_due - loop.time()))
        self._ping_timer = loop.call_later(wait or interval, self._ping)

    def _stop_timers(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._close_timer is not None and self.state is CLOSED:
            self._close_timer.cancel()
            self._close_timer = None
