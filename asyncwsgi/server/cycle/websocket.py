"""One WebSocket connection to a mounted ASGI app (RFC 6455), from its handshake to its close. [loop]

Dispatch makes a ``WebSocketSession`` in place of an ``asgi.ASGICycle`` for a handshake
(``Upgrade: websocket``, ``http.upgrade``) under a mount's prefix. wsproto (by h11's authors)
checks the handshake and, once the app accepts, speaks the frames (``wsstream.WebSocketStream``);
this module is the ASGI side:

    CONNECTING -- the app has ``websocket.connect``; it may accept, close (403) or answer with
                  plain HTTP (the denial-response extension), framed like any response
                  (``asgi.ASGIResponse``) and ending the connection. An app error is a 500.
    OPEN       -- 101 sent; the connection's bytes go to the stream: whole messages become
                  ``websocket.receive``, ``websocket.send`` becomes frames.
    CLOSED     -- the app gets ``websocket.disconnect`` with the code and the client's reason
                  (ASGI spec 2.5); ``send()`` raises ``ClientDisconnected``.

Flow control as for HTTP: ``send()`` waits while the client is not reading; while more than
``--input-buffer-bytes`` of messages wait for the app's ``receive()``, the socket is not read.
WebSockets are for mounted apps only: an upgrade for any other path is an ordinary request.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Union

import h11

from ...asgi.messages import body_of
from ...asgi.mounts import Mount
from ...asgi.scope import websocket_scope
from ...errors import ClientDisconnected
from ...http.deflate_offer import checked_offer
from ...http.head import Head
from ...log import error_log
from ...types import Environ
from ..seam import DONE, Connection, CycleReport
from .asgi import ASGIResponse
from .mounted import MountedCycle
from .wsstream import CLOSED, OPEN, WebSocketStream

if TYPE_CHECKING:
    from ..context import ServerContext

try:  # the optional extra asyncwsgi[ws]
    import wsproto
    from wsproto.events import AcceptConnection, RejectConnection
    from wsproto.extensions import Extension, PerMessageDeflate
    from wsproto.utilities import RemoteProtocolError
except ImportError:  # pragma: no cover - exercised by the test that hides wsproto
    wsproto = None  # type: ignore[assignment]
    PerMessageDeflate = object  # type: ignore[assignment,misc]


def available() -> bool:
    return wsproto is not None


class CheckedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, reading each offer strictly first (``http.deflate_offer``:
    wsproto ignores unknown parameters and raises ValueError on quoted or bad values) and
    accepting only the first offer it can (RFC 7692 §5: the others are declined)."""

    def accept(self, offer: str) -> Union[bool, str, None]:
        if self.enabled():
            return None  # an earlier offer was accepted
        plain = checked_offer(offer)
        return None if plain is None else super().accept(plain)


class WebSocketSession(MountedCycle):
    """One WebSocket, as the mounted app sees it."""

    __slots__ = ("_close_reason", "_denial", "_events", "_raw_head", "_stream", "_ws", "scope")

    def __init__(
        self,
        ctx: ServerContext,
        connection: Connection,
        request: h11.Request,
        environ: Environ,
        head: Head,
        mount: Mount,
        raw_head: bytes,
    ) -> None:
        super().__init__(ctx, connection, request, environ, mount)
        self.scope = websocket_scope(environ, mount.prefix, head.path, head.fields, ctx.lifespan_state(mount.prefix))
        self._raw_head = raw_head  # the handshake's bytes, for wsproto
        self._ws: Any = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._events: Deque[Dict[str, Any]] = collections.deque([{"type": "websocket.connect"}])
        self._stream: Optional[WebSocketStream] = None  # once accepted
        self._denial: Optional[ASGIResponse] = None  # a plain HTTP answer instead of a 101
        self._close_reason = ""

    @property
    def reusable(self) -> bool:
        return False  # a denial ends the connection; a WebSocket is its last use

    # --- from the connection --------------------------------------------------------------------

    def start(self) -> None:
        """Check the handshake with wsproto (it parses the head we already checked), then run
        the app. A handshake wsproto refuses is answered by the server; the app never runs."""
        try:
            self._ws.receive_data(self._raw_head)
            list(self._ws.events())  # the Request, which the scope and head already say
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            status = hint.status_code if isinstance(hint, RejectConnection) else 400
            headers = hint.headers if isinstance(hint, RejectConnection) else []
            self.state = DONE
            self.connection.refuse(status, f"WebSocket handshake: {exc}", self.request, headers)
            return
        self.task = self.ctx.run_asgi(self._run())

    def on_body(self, data: bytes) -> None:
        """(A handshake has no body; h11 never yields one.)"""

    def on_body_end(self) -> None:
        """The handshake request ended (a GET): nothing to do."""

    def body_failed(self, exc: Exception) -> None:
        self._notify()

    def connection_lost(self) -> None:
        if self._stream is not None:
            self._stream.connection_lost()
        elif not self._events or self._events[-1] is not _LOST:
            self._events.append(_LOST)
        self._notify()

    def report(self, now: float, stacks: bool) -> CycleReport:
        return CycleReport("asgi", None, 0.0, False)  # on the loop; not an "in flight" request

    # --- from the stream (wsstream.Listener) ----------------------------------------------------

    def received(self, event: Dict[str, Any]) -> None:
        self._events.append(event)
        self._hold(len(event.get("bytes") or event.get("text") or ""))
        self._notify()

    def closing(self) -> None:
        self._notify()

    def closed(self, code: int, reason: str) -> None:
        self._close_reason = reason
        self._events.append({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._notify()

    # --- the app's task -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.mount.app(self.scope, self._receive, self._send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            error_log.error("%s: the app raised", self._name(), exc_info=exc)
            if self._stream is None:
                self._refuse(500, "the app raised before accepting")
            else:
                self._stream.close(1011, "internal error")
        else:
            if self._stream is None:
                self._refuse(403, "the app returned without accepting")  # as if it closed
        finally:
            self._finish()

    async def _receive(self) -> Dict[str, Any]:
        while not self._events:
            stream = self._stream
            if (stream is not None and stream.state is CLOSED) or self._gone_before_accept():
                code = 1006 if stream is None else stream.close_code
                return {"type": "websocket.disconnect", "code": code, "reason": self._close_reason}
            await self._wait()
        event = self._events.popleft()
        if event is _LOST:
            return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        self._taken(len(event.get("bytes") or event.get("text") or ""))
        return event

    def _gone_before_accept(self) -> bool:
        return self._stream is None and (self.connection.closing or self.state is DONE)

    async def _send(self, message: Dict[str, Any]) -> None:
        kind = message.get("type")
        stream = self._stream
        if stream is None:
            self._handshake(kind, message)
            return
        if stream.state is not OPEN:
            raise ClientDisconnected(f"WebSocket closed ({stream.close_code})")
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
                if not isinstance(data, str):
                    raise TypeError("websocket.send needs bytes or text")
            elif not isinstance(data, (bytes, bytearray)):
                raise TypeError("websocket.send: bytes must be bytes")
            stream.send(data if type(data) is not bytearray else bytes(data))
            while self.connection.write_paused and stream.state is OPEN:
                await self._wait()  # the client is not reading
            if stream.state is CLOSED:
                raise ClientDisconnected(f"WebSocket closed ({stream.close_code})")
        elif kind == "websocket.close":
            code = message.get("code", 1000)
            if type(code) is not int or not (code == 1000 or 3000 <= code <= 4999 or 1001 <= code <= 1014):
                raise ValueError(f"websocket.close: invalid code {code!r}")
            stream.close(code, message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a WebSocket")

    # --- the handshake's answer -----------------------------------------------------------------

    def _handshake(self, kind: Any, message: Dict[str, Any]) -> None:
        """A message while CONNECTING: accept, or refuse, or a denial response."""
        if self.state is DONE or self.connection.closing:
            raise ClientDisconnected("WebSocket handshake abandoned")
        if kind == "websocket.accept" and self._denial is None:
            self._accept(message)
        elif kind == "websocket.close" and self._denial is None:
            self._refuse(403, "the app closed the handshake")
        elif kind == "websocket.http.response.start":
            if self._denial is not None:
                raise RuntimeError("websocket.http.response.start sent twice")
            self._deny().start({"status": message.get("status"), "headers": message.get("headers", ())})
        elif kind == "websocket.http.response.body":
            denial = self._denial
            if denial is None or denial.response_complete:
                raise RuntimeError("websocket.http.response.body without a response in progress")
            body, more = body_of(message)
            if not denial.body(body, more) or denial.response_complete:
                self._end_http("the app denied the WebSocket")
        else:
            raise RuntimeError(f"{kind!r} before websocket.accept")

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
        config = self.ctx.config
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
        self.connection.write(data)
        agreed = deflate is not None and deflate.enabled()  # an offer was accepted
        self._stream = stream = WebSocketStream(self.ctx, self.connection, self._ws, self, agreed, self._name())
        self.connection.upgrade(stream)  # the connection is the stream's now
        if self.ctx.draining:
            stream.going_away()  # accepted as the server began to drain: it goes with the others

    def _refuse(self, status: int, detail: str) -> None:
        """Answer the handshake with plain HTTP and close: 403 when the app closed it (ASGI
        spec), 500 when it raised."""
        denial = self._denial
        if self.connection.closing or (denial is not None and denial.response_complete):
            return
        if denial is not None and denial.response_started:  # a denial is half out: no other
            self.connection.close()
            return
        (denial or self._deny()).plain(status)
        self._end_http(detail)

    def _deny(self) -> ASGIResponse:
        """A plain HTTP answer to the handshake, framed as any response; it ends the connection."""
        self._denial = ASGIResponse(self.connection, self.request, self._name(), close=True)
        return self._denial

    def _end_http(self, detail: str) -> None:
        assert self._denial is not None
        error_log.debug("%s: %d, %s", self._name(), self._denial.status, detail)
        self._events.append(_LOST)  # a receive() from now on says disconnect (1006)
        self._notify()
        self._finish()  # the connection closes now, whatever the app still does

    # --- the end --------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.state is DONE:
            return
        self.state = DONE
        stream = self._stream
        if stream is None:
            denial = self._denial
            status = 0 if denial is None or not denial.response_started else denial.status
            self._log(status, 0 if denial is None else denial.bytes_out, 0, True, False)
            self.connection.cycle_finished(self)  # a plain-HTTP answer: the connection closes
            return
        self._log(101, stream.bytes_out, 0, stream.close_code == 1006, False)
        # The app ended without closing: we do. (Closing, the client's close frame or the close
        # timer ends the connection; closed, the stream has ended it already.)
        stream.close(1000, "")

    def _name(self) -> str:
        return "WebSocket " + super()._name()


_LOST: Dict[str, Any] = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
