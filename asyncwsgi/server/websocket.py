"""The loop side of one WebSocket connection to a mounted ASGI app (RFC 6455). [loop]

Made by the protocol, in place of an ``ASGIExchange``, for a handshake (``Upgrade: websocket``)
under a mount's prefix. The frames are wsproto's (by h11's authors: the handshake checks, the
frame parser with its close codes, permessage-deflate); this module holds the ASGI side and the
connection's rules. WebSockets are for mounted apps only: an upgrade for any other path is an
ordinary request to the WSGI app, as before.

Its life (``ws_state``):

    CONNECTING -- the app has ``websocket.connect``; it may accept, close (403) or answer with
                  plain HTTP (the denial-response extension). An app error is a 500.
    OPEN       -- 101 sent; the connection is the session's (``Phase.UPGRADED``): frames in
                  become ``websocket.receive``, ``websocket.send`` becomes frames out.
    CLOSING    -- we sent a close frame (the app's, 1001 on drain, 1009 for a message over
                  ``--ws-max-size``, 1011 for a missed ping); the client's answer ends it.
    CLOSED     -- the app gets ``websocket.disconnect`` with the code; ``send()`` raises
                  ``ClientDisconnected``.

Flow control as for HTTP: ``send()`` waits while the client is not reading; while more than
``--input-buffer-bytes`` of messages wait for the app's ``receive()``, the socket is not read.
``--ws-ping-interval`` and ``--ws-ping-timeout`` keep it alive and find clients that vanished.
On drain (SIGTERM), open sessions are closed with 1001, going away.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import enum
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Tuple, Union

import h11

from ..asgi.messages import body_of
from ..asgi.mounts import Mount
from ..asgi.scope import websocket_scope
from ..errors import ClientDisconnected
from ..http.deflate_offer import checked_offer
from ..http.head import Head
from ..http.response import BodyFramer
from ..http.wsframes import FrameSizeWatch
from ..log import error_log
from ..types import Environ
from .asgi_response import ASGIResponse
from .exchange import DONE
from .mounted import MountedExchange

try:  # the optional extra asyncwsgi[ws]
    import wsproto
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        CloseConnection,
        Message,
        Ping,
        Pong,
        RejectConnection,
        TextMessage,
    )
    from wsproto.extensions import Extension, PerMessageDeflate
    from wsproto.utilities import RemoteProtocolError
except ImportError:  # pragma: no cover - exercised by the test that hides wsproto
    wsproto = None  # type: ignore[assignment]
    PerMessageDeflate = object  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

# Seconds we wait for the client's close frame after sending ours, before closing the socket.
_CLOSE_TIMEOUT_SECONDS = 5.0
# With permessage-deflate, bytes are fed to the decompressor this many at a time, so one read
# cannot inflate to more than about 1,000 times this (deflate's limit) before --ws-max-size is
# checked.
_DEFLATE_FEED_BYTES = 4096


class WSState(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


CONNECTING, OPEN, CLOSING, CLOSED = WSState


def available() -> bool:
    return wsproto is not None


def is_websocket_upgrade(fields: List[Tuple[bytes, bytes]]) -> bool:
    """Whether a head asks to switch to WebSocket (``Upgrade: websocket``)."""
    return any(name == b"upgrade" and b"websocket" in value.lower() for name, value in fields)


def handshake_problem(request: h11.Request, fields: List[Tuple[bytes, bytes]]) -> Optional[Tuple[int, str]]:
    """RFC 6455 §4.2.1 checks wsproto leaves to us: (status, detail) for a bad handshake."""
    if request.method != b"GET" or request.http_version != b"1.1":
        return 400, "a WebSocket handshake must be GET over HTTP/1.1"
    keys = [value for name, value in fields if name == b"sec-websocket-key"]
    if len(keys) != 1:
        return 400, "a WebSocket handshake needs one Sec-WebSocket-Key"
    try:
        if len(base64.b64decode(keys[0], validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        return 400, "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


class CheckedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, reading each offer strictly first (``http.deflate_offer``:
    wsproto ignores unknown parameters and raises ValueError on quoted or bad values) and
    accepting only the first offer it can (RFC 7692 §5: the others are declined)."""

    def accept(self, offer: str) -> Union[bool, str, None]:
        if self.enabled():
            return None  # an earlier offer was accepted
        plain = checked_offer(offer)
        return None if plain is None else super().accept(plain)


class WebSocketSession(MountedExchange):
    """One WebSocket connection, from its handshake to its close."""

    __slots__ = (
        "_close_code",
        "_close_reason",
        "_close_timer",
        "_deflate",
        "_denial",
        "_events",
        "_message",
        "_message_size",
        "_ping_timer",
        "_pong_due",
        "_sizes",
        "_ws",
        "continue_sent",
        "scope",
        "ws_state",
    )

    def __init__(
        self, protocol: HTTPProtocol, request: h11.Request, environ: Environ, head: Head, mount: Mount
    ) -> None:
        super().__init__(protocol, request, environ, mount)
        ctx = protocol.ctx
        self.scope = websocket_scope(environ, mount.prefix, head.path, head.fields, ctx.lifespan_state(mount.prefix))
        self.ws_state = CONNECTING
        self.continue_sent = False
        # The app's answer in plain HTTP instead of a 101 (the denial-response extension, or our
        # 403 and 500): made when it starts.
        self._denial: Optional[ASGIResponse] = None
        self._ws: Any = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._events: Deque[Dict[str, Any]] = collections.deque([{"type": "websocket.connect"}])
        self._message: List[Any] = []  # the fragments of a message in progress
        self._message_size = 0
        self._close_code = 1006  # what websocket.disconnect says if no close frame comes
        self._close_reason = ""  # the reason in the client's close frame (ASGI spec 2.5)
        self._sizes = FrameSizeWatch(ctx.config.ws_max_size)
        self._ping_timer: Optional[asyncio.TimerHandle] = None
        self._pong_due = 0.0  # loop time by which the last ping's pong must come (0: none due)
        self._close_timer: Optional[asyncio.TimerHandle] = None
        self._deflate = False  # permessage-deflate was negotiated

    # --- what the protocol reads ---------------------------------------------------------------

    @property
    def framer(self) -> Optional[BodyFramer]:
        """The framer of a plain HTTP answer to the handshake, once its head is written."""
        return None if self._denial is None else self._denial.framer

    @property
    def response_complete(self) -> bool:
        return self._denial is not None and self._denial.complete

    # --- from the protocol ----------------------------------------------------------------------

    def start(self) -> None:
        """Check the handshake with wsproto (it parses the head we already checked), then run
        the app. A handshake wsproto refuses is answered by the server; the app never runs."""
        protocol = self.protocol
        try:
            self._ws.receive_data(protocol._head())
            list(self._ws.events())  # the Request, which scope and head already say
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            status = hint.status_code if isinstance(hint, RejectConnection) else 400
            headers = hint.headers if isinstance(hint, RejectConnection) else []
            self.state = DONE
            protocol.send_error(status, f"WebSocket handshake: {exc}", self.request, headers)
            return
        self.task = protocol.ctx.run_asgi(self._run())

    def feed(self, data: bytes) -> None:
        """Frames from the client (Phase.UPGRADED)."""
        if self.ws_state is CLOSED:
            return  # the close handshake is over: what else comes is dropped
        too_large = self._sizes.feed(data)
        if too_large is not None:
            data = data[:too_large]  # the frames before it still count
        step = _DEFLATE_FEED_BYTES if len(data) > _DEFLATE_FEED_BYTES and self._deflate else len(data)
        for offset in range(0, len(data), step or 1):
            self._ws.receive_data(data[offset : offset + step])
            self._take_events()
            if self.ws_state is CLOSED:
                return
        if too_large is not None:
            self._refuse_message()

    def _refuse_message(self) -> None:
        """A frame header took its message over --ws-max-size: 1009 at once (RFC 6455 §7.4.1).
        The client cannot answer our close until its frame ends, which may be never: the app
        hears the close now, and the connection half-closes and discards what comes."""
        limit = self.protocol.ctx.config.ws_max_size
        self._send_close(1009, f"message over {limit} bytes")
        self._closed(1009, "")
        self.protocol.linger()

    def feed_eof(self) -> None:
        """The client closed its side without a close frame: 1006."""
        self._eof = True
        self._closed(1006, "")
        self.protocol.close()

    def on_body(self, data: bytes) -> None:
        """(A handshake has no body; h11 never yields one.)"""

    def on_body_end(self) -> None:
        """The handshake request ended (a GET): nothing to do."""

    def fail(self, exc: BaseException) -> None:
        self._notify()

    def connection_lost(self) -> None:
        self._closed(self._close_code, self._close_reason)
        self._stop_timers()
        self._notify()

    def going_away(self) -> None:
        """The server drains: close an open session with 1001."""
        if self.ws_state is OPEN:
            self._send_close(1001, "server shutting down")

    # --- the app's task -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.mount.app(self.scope, self._receive, self._send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            error_log.error("%s: the app raised", self._name(), exc_info=exc)
            if self.ws_state is CONNECTING:
                self._refuse(500, "the app raised before accepting")
            elif self.ws_state is OPEN:
                self._send_close(1011, "internal error")
        else:
            if self.ws_state is CONNECTING:
                self._refuse(403, "the app returned without accepting")  # as if it closed
            elif self.ws_state is OPEN:
                self._send_close(1000, "")
        finally:
            self._finish()

    async def _receive(self) -> Dict[str, Any]:
        while not self._events:
            if self.ws_state is CLOSED:
                return {"type": "websocket.disconnect", "code": self._close_code, "reason": self._close_reason}
            await self._wait()
        event = self._events.popleft()
        self._taken(len(event.get("bytes") or event.get("text") or ""))
        return event

    async def _send(self, message: Dict[str, Any]) -> None:
        kind = message.get("type")
        state = self.ws_state
        if kind == "websocket.accept" and state is CONNECTING:
            self._accept(message)
        elif kind == "websocket.close" and state is CONNECTING:
            self._refuse(403, "the app closed the handshake")
        elif kind == "websocket.http.response.start" and state is CONNECTING:
            self._deny_start(message)
        elif kind == "websocket.http.response.body" and state is CONNECTING:
            self._deny_body(message)
        elif state is not OPEN:
            if state is CONNECTING:
                raise RuntimeError(f"{kind!r} before websocket.accept")
            raise ClientDisconnected(f"WebSocket closed ({self._close_code})")
        elif kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                text = message.get("text")
                if not isinstance(text, str):
                    raise TypeError("websocket.send needs bytes or text")
                self._write(self._ws.send(Message(data=text)))
            else:
                if not isinstance(data, (bytes, bytearray)):
                    raise TypeError("websocket.send: bytes must be bytes")
                self._write(self._ws.send(Message(data=bytes(data))))
            while self.protocol.write_paused and self.ws_state is OPEN:
                await self._wait()  # the client is not reading
            if self.ws_state is CLOSED:
                raise ClientDisconnected(f"WebSocket closed ({self._close_code})")
        elif kind == "websocket.close":
            code = message.get("code", 1000)
            reason = message.get("reason") or ""
            if type(code) is not int or not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014):
                raise ValueError(f"websocket.close: invalid code {code!r}")
            self._send_close(code, reason)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    # --- handshake ------------------------------------------------------------------------------

    def _accept(self, message: Dict[str, Any]) -> None:
        headers = []
        for item in message.get("headers", ()):
            name, value = item
            if type(name) is not bytes or type(value) is not bytes:
                raise TypeError(f"websocket.accept: header name and value must be bytes, got {item!r}")
            headers.append((name, value))
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
            raise ValueError(f"websocket.accept: subprotocol {subprotocol!r} was not offered")
        config = self.protocol.ctx.config
        extensions: List[Extension] = []
        deflate = None
        if config.ws_per_message_deflate:
            # Without context takeover (asked of the client too, RFC 7692 §7.1.1), a socket holds
            # no zlib state between messages: 16 KiB per idle socket instead of about 115 KiB
            # once it has sent and received a message (benchmarks/mixing.py).
            takeover = config.ws_deflate_context_takeover
            deflate = CheckedDeflate(client_no_context_takeover=not takeover, server_no_context_takeover=not takeover)
            extensions.append(deflate)
        data = self._ws.send(AcceptConnection(subprotocol=subprotocol, extensions=extensions, extra_headers=headers))
        self._deflate = deflate is not None and deflate.enabled()  # an offer was accepted
        self.protocol.write(data)
        self.ws_state = OPEN
        self.status = 101
        self.protocol.upgrade()  # the connection is ours now; bytes behind the head come to feed()
        self._schedule_ping()
        if self.protocol.ctx.draining:
            self.going_away()  # accepted as the server began to drain: it goes with the others

    def _refuse(self, status: int, detail: str) -> None:
        """Answer the handshake with plain HTTP and close: 403 when the app closed it (ASGI
        spec), 500 when it raised."""
        denial = self._denial
        if self.protocol.lost or (denial is not None and denial.complete):
            return
        if denial is not None and denial.framer is not None:  # a denial is half out: no other
            self.ws_state = CLOSED
            self.protocol.close()
            self._finish()
            return
        if denial is None:
            denial = self._deny()
        denial.plain(status)
        self._end_http(detail)

    def _deny_start(self, message: Dict[str, Any]) -> None:
        if self._denial is not None:
            raise RuntimeError("websocket.http.response.start sent twice")
        self._deny().start({"status": message.get("status"), "headers": message.get("headers", ())})

    def _deny_body(self, message: Dict[str, Any]) -> None:
        denial = self._denial
        if denial is None or denial.complete:
            raise RuntimeError("websocket.http.response.body without a response in progress")
        body, more = body_of(message)
        if denial.body(body, more) and not denial.complete:
            return  # more to come
        self._end_http("the app denied the WebSocket")

    def _deny(self) -> ASGIResponse:
        """A plain HTTP answer to the handshake, framed as any response; it ends the connection."""
        self.protocol.close_after_response()
        self._denial = ASGIResponse(self.protocol, self.request, self._name())
        return self._denial

    def _end_http(self, detail: str) -> None:
        denial = self._denial
        assert denial is not None
        error_log.debug("%s: %d, %s", self._name(), denial.status, detail)
        self.status = denial.status
        self.bytes_out = denial.bytes_out
        self.ws_state = CLOSED
        self._close_code = 1006
        self._notify()
        self._finish()  # the connection closes now, whatever the app still does

    # --- frames ---------------------------------------------------------------------------------

    def _take_events(self) -> None:
        ws = self._ws
        max_size = self.protocol.ctx.config.ws_max_size
        for event in ws.events():
            if isinstance(event, Message):
                self._message.append(event.data)
                self._message_size += len(event.data)
                if self._message_size > max_size:
                    self._message = []
                    self._send_close(1009, f"message over {max_size} bytes")
                    return
                if event.message_finished:
                    pieces, self._message, self._message_size = self._message, [], 0
                    if isinstance(event, TextMessage):
                        self._queue({"type": "websocket.receive", "text": "".join(pieces)})
                    else:
                        assert isinstance(event, BytesMessage)
                        self._queue({"type": "websocket.receive", "bytes": b"".join(pieces)})
            elif isinstance(event, Ping):
                self._write(ws.send(event.response()))
            elif isinstance(event, Pong):
                self._pong_due = 0.0
            elif isinstance(event, CloseConnection):
                self._close_code = event.code
                if self.ws_state is OPEN:
                    self._write(ws.send(event.response()))  # answer it (RFC 6455 §5.5.1)
                self._closed(event.code, event.reason or "")
                self.protocol.close()  # the server closes the TCP connection first (§7.1.1)
                return

    def _queue(self, event: Dict[str, Any]) -> None:
        self._events.append(event)
        self._hold(len(event.get("bytes") or event.get("text") or ""))
        self._notify()

    def _send_close(self, code: int, reason: str) -> None:
        if self.ws_state is not OPEN:
            return
        self._close_code = code
        self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self.ws_state = CLOSING
        self._stop_timers()
        self._close_timer = self.protocol.ctx.loop.call_later(_CLOSE_TIMEOUT_SECONDS, self.protocol.close)
        self._notify()

    def _closed(self, code: int, reason: str) -> None:
        """The session is over: the app's next receive() says so, with the client's close code
        and reason (ASGI spec 2.5; 1006 and no reason when no close frame came)."""
        if self.ws_state is CLOSED:
            return
        self.ws_state = CLOSED
        self._close_code = code
        self._close_reason = reason
        self._stop_timers()
        self._events.append({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._notify()

    def _write(self, data: bytes) -> None:
        if data and not self.protocol.lost:
            self.bytes_out += len(data)
            self.protocol.write(data)

    # --- keep-alive -----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.protocol.ctx.config.ws_ping_interval
        if interval:
            self._ping_timer = self.protocol.ctx.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.ws_state is not OPEN:
            return
        loop = self.protocol.ctx.loop
        timeout = self.protocol.ctx.config.ws_ping_timeout
        if self._pong_due and loop.time() >= self._pong_due:
            self.protocol.ctx.stats.timeouts["ws_ping"] += 1
            error_log.info("%s: no pong within --ws-ping-timeout; closing", self._name())
            self._send_close(1011, "keepalive ping timeout")
            return
        if not self._pong_due:
            self._write(self._ws.send(Ping(payload=b"%d" % int(loop.time() * 1000))))
            if timeout:
                self._pong_due = loop.time() + timeout
        interval = self.protocol.ctx.config.ws_ping_interval
        wait = interval if not self._pong_due else min(interval, max(0.0, self._pong_due - loop.time()))
        self._ping_timer = loop.call_later(wait or interval, self._ping)

    def _stop_timers(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._close_timer is not None and self.ws_state is CLOSED:
            self._close_timer.cancel()
            self._close_timer = None

    # --- helpers --------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.state is DONE:
            return
        self.state = DONE
        self._stop_timers()
        protocol = self.protocol
        self._log(0, self._close_code == 1006, False)
        if self.ws_state is OPEN:
            self._send_close(1000, "")  # the app ended without closing
        if protocol.exchange is not self:
            return
        if self.status == 101:
            if self.ws_state is CLOSED:
                protocol.close()
            # CLOSING: the client's close frame (or the close timer) closes the connection
        else:
            protocol.exchange_finished(self)  # a plain-HTTP answer: closes (close_after_response)

    def _name(self) -> str:
        return "WebSocket " + super()._name()
