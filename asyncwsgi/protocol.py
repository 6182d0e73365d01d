"""One client connection: bytes in, h11 events, one Exchange at a time, bytes out. [loop]

Rules this module keeps (RFC 9112):

* Requests on a connection are answered in order: a pipelined request waits in h11's buffer
  until the previous response is complete (``PAUSED``), and reading stops if that buffer grows.
* A request h11 cannot parse gets its ``error_status_hint`` (400, 431, 501) and
  ``Connection: close``; so does one h11 accepts but we must not (Content-Length together with
  Transfer-Encoding, §6.1; a missing, repeated or malformed Host, §3.2; a bad target form).
* After an error response the connection is half-closed and drained briefly before it is
  closed, so the client reads the answer instead of a reset.
* Reading the socket is paused for three independent reasons (a full ``wsgi.input`` buffer,
  no free worker, a buffered pipelined request) and resumes only when none remains.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import h11

from .environ import BadTarget, check_host, split_target
from .errors import ClientDisconnected, RequestBodyError
from .exchange import Exchange, request_line
from .log import error_log, log_access

if TYPE_CHECKING:
    from .context import ServerContext

_PAUSE_BODY = 1
_PAUSE_POOL = 2
_PAUSE_PIPELINE = 4

# Bytes of pipelined requests we hold in h11's buffer before we stop reading the socket.
_PIPELINE_BUFFER_BYTES = 64 * 1024
# Request body bytes we read and discard after the app answered without reading it all.
_DRAIN_LIMIT_BYTES = 1024 * 1024
# Seconds we keep reading (and discarding) after sending an error, before closing.
_LINGER_SECONDS = 2.0

_REASONS = {
    400: b"Bad Request",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    505: b"HTTP Version Not Supported",
}


class HTTPProtocol(asyncio.Protocol):
    __slots__ = (
        "_drained",
        "_lingering",
        "_read_pauses",
        "_timer",
        "client",
        "conn",
        "ctx",
        "exchange",
        "lost",
        "server",
        "transport",
        "write_paused",
    )

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.transport: Any = None
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=ctx.config.max_head_bytes)
        self.exchange: Optional[Exchange] = None
        self.client: Optional[Tuple[str, str]] = None
        self.server: Tuple[str, str] = ("localhost", "80")
        self.lost = False
        self.write_paused = False
        self._read_pauses = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._drained = 0
        self._lingering = False

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        ctx = self.ctx
        ctx.connections.add(self)
        transport.set_write_buffer_limits(high=ctx.config.output_buffer_bytes)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = (str(peer[0]), str(peer[1]))
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.server = (str(local[0]), str(local[1]))
        if ctx.draining:
            transport.close()
            return
        self._arm_timer(ctx.config.keep_alive)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        self.conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool:
        if self._lingering:
            self.transport.close()
            return False
        exchange = self.exchange
        if exchange is not None and exchange.state != "DONE" and self.conn.their_state is h11.SEND_BODY:
            # EOF before the body ended is the client going away, not a malformed body.
            exchange.body.fail(ClientDisconnected("client closed the connection mid-body"))  # type: ignore[union-attr]
        self.conn.receive_data(b"")
        self._process()
        # Keep the write side open: a response in progress still goes out (half-close).
        return True

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = True
        self._cancel_timer()
        ctx = self.ctx
        ctx.connections.discard(self)
        exchange = self.exchange
        if exchange is not None and exchange.state != "DONE":
            exchange.connection_lost()
        if ctx.on_connection_lost is not None:
            ctx.on_connection_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchange is not None:
            self.exchange.channel.pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.exchange is not None:
            self.exchange.channel.resume()

    # --- event processing ----------------------------------------------------------------------

    def _process(self) -> None:
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._on_protocol_error(exc)
                return
            kind = type(event)
            if kind is h11.Data:
                exchange = self.exchange
                assert exchange is not None
                if exchange.state == "DONE":
                    self._drained += len(event.data)  # type: ignore[union-attr]
                    if self._drained > _DRAIN_LIMIT_BYTES:
                        self.close()
                        return
                else:
                    exchange.on_body(event.data)  # type: ignore[union-attr]
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
                if self._lingering or self.transport.is_closing():
                    return  # rejected: nothing after it on this connection is processed
            elif kind is h11.EndOfMessage:
                exchange = self.exchange
                assert exchange is not None
                if exchange.state == "DONE":  # finished draining an unread body
                    self._next_cycle()
                    return
                exchange.on_body_end()
            elif kind is h11.NEED_DATA:
                return
            elif kind is h11.PAUSED:
                if len(conn.trailing_data[0]) > _PIPELINE_BUFFER_BYTES:
                    self._pause_reading(_PAUSE_PIPELINE)
                return
            elif kind is h11.ConnectionClosed:
                if self.exchange is None:
                    self.close()
                return  # else: the response in progress still goes out, then we close

    def _on_request(self, request: h11.Request) -> None:
        self._cancel_timer()
        if request.http_version[:2] != b"1.":
            # h11 parses any single-digit version; we speak HTTP/1.x only (RFC 9110 §15.6.6).
            self.send_error(505, f"unsupported HTTP version {request.http_version!r}", request)
            return
        headers = request.headers
        try:
            content_length = transfer_encoding = False
            # h11 bounds only heads still incomplete; one that arrives whole in a single read
            # is parsed whatever its size, so the limit is enforced again here.
            head_bytes = len(request.method) + len(request.target) + 12
            for name, value in headers:
                head_bytes += len(name) + len(value) + 4
                if name == b"content-length":
                    content_length = True
                elif name == b"transfer-encoding":
                    transfer_encoding = True
            if head_bytes > self.ctx.config.max_head_bytes:
                self.send_error(431, f"request head of {head_bytes} bytes is over --max-head-bytes", request)
                return
            if content_length and transfer_encoding:
                # RFC 9112 §6.1: ambiguous framing is how requests get smuggled; refuse it.
                raise BadTarget("Content-Length together with Transfer-Encoding")
            check_host(request.http_version, headers)
            path, query = split_target(request.method, request.target)
        except BadTarget as exc:
            self.send_error(400, str(exc), request)
            return
        has_body = transfer_encoding or (content_length and _content_length(headers) > 0)
        ctx = self.ctx
        environ = ctx.environ.build(
            request.method,
            request.target,
            request.http_version,
            headers,
            path,
            query,
            self.server,
            self.client,
            None,
        )
        exchange = Exchange(self, request, environ, has_body)
        self.exchange = exchange
        exchange.start()

    def _on_protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.state != "DONE":
            # The head was fine but the body is not: the app is already running, so tell it
            # through wsgi.input and close once its response is out.
            error_log.info("bad request body from %s: %s", self._peer(), exc)
            exchange.body.fail(RequestBodyError(str(exc)))  # type: ignore[union-attr]
            self._pause_reading(_PAUSE_BODY)
            return
        if exchange is not None:  # error while draining after the response: just close
            self.close()
            return
        self.send_error(exc.error_status_hint, str(exc), None)

    # --- lifecycle of a cycle ------------------------------------------------------------------

    def exchange_finished(self, exchange: Exchange) -> None:
        """The app's job is over and its response fully handed to the transport."""
        if self.lost:
            return
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.SEND_BODY:
            # The app answered without reading the whole body: read on and discard the rest
            # (bounded) so the connection can be reused.
            self._drained = 0
            self._resume_reading(_PAUSE_BODY)
            self._process()
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        conn = self.conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE and not self.ctx.draining:
            conn.start_next_cycle()
            self.exchange = None
            self._resume_reading(_PAUSE_PIPELINE | _PAUSE_BODY)
            self._arm_timer(self.ctx.config.keep_alive)
            if conn.trailing_data[0]:
                self._process()  # a pipelined request is already here
            return
        self.exchange = None
        self.close()

    def should_close_after_response(self) -> bool:
        """Whether the response being started must carry ``Connection: close``."""
        conn = self.conn
        return (
            self.ctx.draining
            or self.ctx.config.keep_alive == 0
            # The client waits for 100 Continue that never came: we can't tell whether its body
            # will follow, so the connection can't be reused (RFC 9110 §10.1.1).
            or conn.they_are_waiting_for_100_continue
            or conn.their_state is h11.ERROR
        )

    def shutdown(self) -> None:
        """The server is draining: close now if idle, else after the current response."""
        if self.exchange is None and not self.conn.trailing_data[0]:
            self.close()

    # --- errors --------------------------------------------------------------------------------

    def send_error(self, status: int, detail: str, request: Optional[h11.Request]) -> None:
        """Answer a request we refuse, then half-close and linger so the client reads it."""
        conn = self.conn
        reason = _REASONS.get(status, b"Bad Request")
        body = reason + b"\n"
        error_log.info("%d %s from %s: %s", status, reason.decode(), self._peer(), detail)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not self.lost:
            headers = [
                (b"Content-Type", b"text/plain; charset=utf-8"),
                (b"Content-Length", str(len(body)).encode()),
                (b"Connection", b"close"),
                (b"Date", self.ctx.date_header()),
            ]
            if self.ctx.server_header is not None:
                headers.append((b"Server", self.ctx.server_header))
            try:
                out = [conn.send(h11.Response(status_code=status, reason=reason, headers=headers))]
                out.append(conn.send(h11.Data(data=body)))
                out.append(conn.send(h11.EndOfMessage()))
                self.writelines(out)
            except h11.LocalProtocolError:
                pass
            if self.ctx.config.access_log:
                line = "-" if request is None else request_line(request)
                log_access(self.client[0] if self.client else "-", line, status, len(body), "-", "-", 0.0)
        self._linger()

    def _linger(self) -> None:
        transport = self.transport
        if self.lost or transport.is_closing():
            return
        self._lingering = True
        self.exchange = None
        self._cancel_timer()
        if transport.can_write_eof():
            transport.write_eof()
            self._read_pauses = 0
            transport.resume_reading()
            self._timer = self.ctx.loop.call_later(_LINGER_SECONDS, self.close)
        else:
            transport.close()

    # --- transport helpers ---------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writelines(self, pieces: List[Any]) -> None:
        if len(pieces) == 1:
            self.transport.write(pieces[0])
        elif sum(len(p) for p in pieces) <= 16 * 1024:
            self.transport.write(b"".join(pieces))
        else:
            for piece in pieces:
                if piece:
                    self.transport.write(piece)

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def pause_reading_body(self) -> None:
        self._pause_reading(_PAUSE_BODY)

    def resume_reading_body(self) -> None:
        self._resume_reading(_PAUSE_BODY)

    def pause_reading_for_pool(self) -> None:
        self._pause_reading(_PAUSE_POOL)

    def resume_reading_for_pool(self) -> None:
        self._resume_reading(_PAUSE_POOL)

    def _pause_reading(self, reason: int) -> None:
        if not self._read_pauses and not self.lost and not self.transport.is_closing():
            self.transport.pause_reading()
        self._read_pauses |= reason

    def _resume_reading(self, reasons: int) -> None:
        if not self._read_pauses & reasons:
            return
        self._read_pauses &= ~reasons
        if not self._read_pauses and not self.lost and not self.transport.is_closing():
            self.transport.resume_reading()

    def _arm_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.ctx.loop.call_later(seconds, self._on_idle_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_idle_timeout(self) -> None:
        self._timer = None
        if self.exchange is None:
            error_log.debug("closing idle connection from %s", self._peer())
            self.close()

    def _peer(self) -> str:
        return self.client[0] if self.client else "unix"


def _content_length(headers: Any) -> int:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 has already validated it
    return 0
