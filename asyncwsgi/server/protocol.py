"""One client connection: bytes in, h11 events, one Exchange at a time, bytes out. [loop]

Rules this module keeps (RFC 9112):

* Requests on a connection are answered in order: a pipelined request waits in h11's buffer
  until the previous response is complete (``PAUSED``), and reading stops if that buffer grows.
* A request h11 cannot parse gets its ``error_status_hint`` (400, 431, 501) and
  ``Connection: close``; so does one h11 accepts but we must not (Content-Length together with
  Transfer-Encoding, §6.1; a missing, repeated or malformed Host, §3.2; a bad target form) and
  one over a configured limit (414, 431, 413).
* After an error response the connection is half-closed and drained briefly before it is
  closed, so the client reads the answer instead of a reset.
* Reading the socket is paused for independent reasons (a full ``wsgi.input`` buffer, no free
  worker, a buffered pipelined request, a body we gave up on) and resumes when none remains.
  Waiting for a worker pauses lazily, at the first bytes that arrive meanwhile.

Deadlines, all enforced here on the loop so that no thread waits on a slow client:

    IDLE  keep-alive wait for the next request           (--keep-alive; closes quietly)
    HEAD  a complete head, from its first byte            (--header-timeout; 408, not reset per byte)
    BODY  the next body bytes while we want them          (--body-timeout, --body-min-rate)
    WRITE the client reading while our output is queued   (--write-timeout; aborts)

IDLE/HEAD/BODY share one deadline (one is relevant at a time), filed in the server's
``DeadlineWheel`` rather than on a loop timer of its own; WRITE has its own timer. The deadline
is lazy: moving it later (every keep-alive request does) only records it, and a slot that comes
early re-files the connection for what remains. Arrivals of body bytes only record a time,
likewise. So a busy connection costs no timer operations per request.

An idle connection holds no h11 parser: one is made when the next request's first bytes come.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import h11

from ..accesslog import AccessRecord, log_access
from ..errors import (
    ClientDisconnected,
    ProxyProtocolError,
    RequestBodyError,
    RequestBodyTimeout,
    RequestBodyTooLarge,
    RequestTrailersTooLarge,
)
from ..http import direct_body, proxyprotocol, wirecheck
from ..http.head import HeadRefused, check_fields, check_request
from ..http.response import simple_response
from ..http.wirecheck import ChunkedChecker, FramingRefused, HeadScanner
from ..log import error_log
from ..wsgi.proxy import apply_proxy_headers
from .exchange import DONE, Exchange, request_line

if TYPE_CHECKING:
    from .context import ServerContext

# Why reading is paused (a bit set: reading resumes when it is empty).
_PAUSE_BODY = 1  # wsgi.input's buffer is full
_PAUSE_POOL = 2  # waiting for a worker thread
_PAUSE_PIPELINE = 4  # a pipelined request is buffered behind the current one
_PAUSE_REFUSED = 8  # we gave up on this request's body; nothing more is read

# Which deadline the read-side timer enforces.
_IDLE, _HEAD, _BODY, _LINGER = "IDLE", "HEAD", "BODY", "LINGER"

# h11's states for a client whose request has ended: DONE, or MUST_CLOSE when the request did
# not ask for a persistent connection in h11's view (Connection: close, or any HTTP/1.0 request:
# h11 does not know HTTP/1.0's keep-alive). Whether we reuse the connection is ours to decide.
# MIGHT_SWITCH_PROTOCOL is a request with Upgrade (or CONNECT): we never switch (RFC 9110 §7.8 lets
# a server ignore Upgrade), so it ended like any other and the connection goes on.
_REQUEST_ENDED = (h11.DONE, h11.MUST_CLOSE, h11.MIGHT_SWITCH_PROTOCOL)  # type: ignore[attr-defined]
# A read with more than this after a complete head has the head parsed on its own, so that its
# body can skip h11's buffer (direct_body.py); below it, the copies cost less than the split.
_SPLIT_AFTER_HEAD_BYTES = 4096
# Bytes of pipelined requests we hold in h11's buffer before we stop reading the socket.
_PIPELINE_BUFFER_BYTES = 64 * 1024
# Request body bytes we read and discard after the app answered without reading it all.
_DRAIN_LIMIT_BYTES = 1024 * 1024
# While draining, how long a new connection has to send its first request.
_DRAIN_FIRST_REQUEST_SECONDS = 1.0
# Seconds we keep reading (and discarding) after sending an error, before closing.
_LINGER_SECONDS = 2.0
# --body-min-rate is checked this often, and only after this much time reading the body.
_MIN_RATE_CHECK_SECONDS = 1.0
_MIN_RATE_GRACE_SECONDS = 5.0
# A slot that comes this close to our deadline counts as on time (event loops round timers).
_TIMER_SLACK_SECONDS = 0.002

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


class HTTPProtocol(asyncio.Protocol):
    __slots__ = (
        "_body_length",
        "_body_paused_at",
        "_body_paused_total",
        "_body_received",
        "_body_started",
        "_chunks",
        "_close_after_response",
        "_deadline",
        "_drained",
        "_head_read",
        "_head_scan",
        "_head_source",
        "_last_read",
        "_proxy",
        "_read_pauses",
        "_requests",
        "_timer_kind",
        "_timer_slot",
        "_transport_paused",
        "_write_timer",
        "client",
        "conn",
        "ctx",
        "exchange",
        "lost",
        "server",
        "transport",
        "write_paused",
    )

    def __init__(self, ctx: ServerContext, client: Optional[Tuple[str, str]]) -> None:
        self.ctx = ctx
        self.transport: Any = None
        self.conn: Optional[h11.Connection] = None  # made when a request's first bytes arrive
        self.exchange: Optional[Exchange] = None
        self.client = client  # (ip, port) from accept(), or the PROXY header's; None on Unix sockets
        # --proxy-protocol: a bytearray while the header is awaited, then what it said (_Proxied).
        self._proxy: Any = None
        self.server: Tuple[str, str] = ("localhost", "80")
        self.lost = False
        self.write_paused = False
        self._read_pauses = 0
        self._transport_paused = False  # transport.pause_reading() is in effect
        self._timer_slot: Optional[int] = None  # our slot in ctx.deadlines
        self._timer_kind = _IDLE
        self._deadline: Optional[float] = None  # when the current kind's deadline passes
        self._write_timer: Optional[asyncio.TimerHandle] = None
        self._drained = 0
        self._requests = 0
        self._close_after_response = False
        # wirecheck: the next head's bytes are checked before h11 parses them (a scanner while
        # one is in progress); the last complete head's read and the offset past it; and a
        # chunked body's framing, followed beside h11 while it lasts.
        self._head_scan: Optional[HeadScanner] = None
        self._head_read: Tuple[Any, int] = (b"", 0)
        self._head_source: Tuple[Any, int] = (b"", 0)  # the last complete head: source[:end]
        self._chunks: Optional[ChunkedChecker] = None
        # Body progress, for --body-timeout and --body-min-rate.
        self._last_read = 0.0
        self._body_received = 0
        self._body_length: Optional[int] = None  # the request's Content-Length, if it has one
        self._body_started = 0.0
        self._body_paused_total = 0.0
        self._body_paused_at = 0.0

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        ctx = self.ctx
        ctx.connections.add(self)
        transport.set_write_buffer_limits(high=ctx.config.output_buffer_bytes)  # type: ignore[attr-defined]
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.server = ctx.server_address(local[0], local[1])
        peers = ctx.proxy_protocol_peers
        if peers is not None and peers.trusts(None if self.client is None else self.client[0]):
            self._proxy = bytearray()
        # The first head is due within --header-timeout of the connection (a later TLS
        # handshake falls inside this deadline too). While draining, a new connection still gets
        # its first request answered (its client has most likely sent it already), sooner.
        self._arm(_HEAD, _drain_grace(ctx.config.header_timeout) if ctx.draining else ctx.config.header_timeout)

    def data_received(self, data: bytes) -> None:
        kind = self._timer_kind
        if kind is _LINGER:
            return
        if kind is _BODY:
            self._last_read = self.ctx.loop.time()
        elif kind is _IDLE and self.exchange is None:
            # The first byte of the next request: from now on its head is on the clock.
            self._arm(_HEAD, self.ctx.config.header_timeout)
        if self._read_pauses and not self._transport_paused:
            self._pause_transport()  # bytes while we lazily wait for a thread: now stop reading
        if type(self._proxy) is bytearray:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self.exchange is None:
            checked = self._scan_head(data)
            if not checked:
                return  # refused, or only empty lines so far
            data = checked
            read, end = self._head_read
            if read is data and len(data) - end > _SPLIT_AFTER_HEAD_BYTES:
                # A head with a large body behind it in one read: h11 parses the head alone, so
                # the body takes the direct path below instead of h11's buffer (three copies).
                # A chunked body's checker has already seen these bytes (in _on_request).
                conn = self.conn
                if conn is None:
                    conn = self.conn = self._new_parser()
                conn.receive_data(data[:end])
                self._process()
                if self.exchange is None or self._timer_kind is _LINGER or self.transport.is_closing():
                    return  # refused: nothing after the head is read
                data = memoryview(data)[end:]  # no copy of the body (mypy promotes views to bytes)
        elif self._chunks is not None and not self._check_chunks(data):
            return
        conn = self.conn
        if conn is None:
            conn = self.conn = self._new_parser()
        elif self.exchange is not None:
            split = direct_body.take(conn, data)
            if split is not None:  # a Content-Length body's bytes: straight to the app
                body, data, complete = split
                self._on_body_data(body)
                if self.transport.is_closing() or not complete:
                    return
        if data:
            conn.receive_data(data)
        if self.exchange is not None and conn.their_state in _REQUEST_ENDED:
            # Pipelined bytes behind a complete request: nothing to parse until its response is
            # out, but don't buffer without bound. (So the buffer can pass the limit by one read.)
            self._check_pipeline_buffer()
            return
        self._process()

    def eof_received(self) -> bool:
        if self._timer_kind is _LINGER:
            self.transport.close()
            return False
        conn = self.conn
        if conn is None:  # idle between requests: the client is done with us
            self.close()
            return False
        exchange = self.exchange
        if exchange is not None and exchange.state is not DONE:
            exchange.channel.mark_gone()  # asyncwsgi.disconnected
            if conn.their_state is h11.SEND_BODY:
                # EOF before the body ended is the client going away, not a malformed body.
                exchange.body.fail(ClientDisconnected("client closed the connection mid-body"))
        conn.receive_data(b"")
        self._process()
        # Keep the write side open: a response in progress still goes out (half-close).
        return True

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.lost = True
        self._stop_timer()
        self._cancel_write_timer()
        ctx = self.ctx
        ctx.connections.discard(self)
        proxy = self._proxy
        if type(proxy) is _Proxied:
            ctx.gate.release(proxy.peer_ip)  # admitted under the balancer's address
        else:
            ctx.gate.release(None if self.client is None else self.client[0])
        exchange = self.exchange
        if exchange is not None and exchange.state is not DONE:
            ctx.stats.disconnects += 1
            exchange.connection_lost()
        if ctx.on_connection_lost is not None:
            ctx.on_connection_lost()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.exchange is not None:
            self.exchange.channel.pause()
        timeout = self.ctx.config.write_timeout
        if timeout and self._write_timer is None:
            self._write_timer = self.ctx.loop.call_later(timeout, self._on_write_stalled)

    def resume_writing(self) -> None:
        self.write_paused = False
        self._cancel_write_timer()
        if self.exchange is not None:
            self.exchange.channel.resume()

    # --- event processing ----------------------------------------------------------------------

    def _process(self) -> None:
        conn = self._parser()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._on_protocol_error(exc)
                return
            kind = type(event)
            if kind is h11.Data:
                self._on_body_data(event.data)  # type: ignore[union-attr]
                if self.transport.is_closing():
                    return
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
                if self._timer_kind is _LINGER or self.transport.is_closing():
                    return  # rejected: nothing after it on this connection is processed
            elif kind is h11.EndOfMessage:
                if self._on_body_end(event):  # type: ignore[arg-type]
                    return
                if conn.their_state in _REQUEST_ENDED:
                    # Nothing more to parse until the next cycle's fresh parser, which takes what
                    # is buffered; later reads are bounded in data_received.
                    return
            elif kind is h11.NEED_DATA:
                if conn.their_state is h11.IDLE:
                    self._check_partial_head()
                return
            elif kind is h11.PAUSED:
                self._check_pipeline_buffer()
                return
            elif kind is h11.ConnectionClosed:
                if self.exchange is None:
                    self.close()
                return  # else: the response in progress still goes out, then we close

    def _read_proxy_header(self, data: bytes) -> bytes:
        """--proxy-protocol: take the header off the connection's first bytes; what follows is HTTP.

        Returns the bytes after the header (empty while it is incomplete, or when refused).
        """
        pending = self._proxy
        pending += data
        try:
            parsed = proxyprotocol.parse(pending)
        except ProxyProtocolError as exc:
            self._proxy = None
            self.send_error(400, f"PROXY protocol: {exc}", None)
            return b""
        if parsed is None:
            return b""
        consumed, header = parsed
        self._proxy = _Proxied(None if self.client is None else self.client[0], header.tls)
        if header.client is not None:
            self.client = header.client
        return bytes(pending[consumed:])

    def _scan_head(self, data: bytes) -> bytes:
        """Check the bytes of the next head before h11 parses them (``wirecheck``).

        Returns what h11 should get: ``data`` less leading empty lines; empty when there is
        nothing to parse yet, or when the head was refused (answered 400 here).
        """
        scan = self._head_scan
        try:
            if scan is None:
                # Most heads come whole in one read: check them without a scanner (0.9 µs).
                end = data.find(b"\r\n\r\n") if data[:1] != b"\r" else -1
                if end >= 0:
                    end += 4
                    wirecheck.check_head(data, 0, end)
                    self._head_read = self._head_source = (data, end)
                    return data
                scan = self._head_scan = HeadScanner()
            checked, end = scan.feed(data)
        except FramingRefused as exc:
            self._head_scan = None
            self.send_error(exc.status, str(exc), None)
            return b""
        if end >= 0:
            self._head_scan = None
            self._head_read = (checked, end)  # the bytes after the head may start a chunked body
            self._head_source = scan.source
        return checked  # type: ignore[return-value]

    def _head(self) -> bytes:
        """The last complete head's bytes (for the rare checks that need them raw)."""
        source, end = self._head_source
        return bytes(source[:end])

    def _check_chunks(self, data: bytes) -> bool:
        """Follow a chunked body's framing; False (and the body refused) at a fault."""
        chunks = self._chunks
        assert chunks is not None
        try:
            chunks.feed(data)
        except FramingRefused as exc:
            self._chunks = None
            exchange = self.exchange
            if exchange is not None and exchange.state is DONE:
                # Draining a body the app did not read, its response already out: just end.
                error_log.info("malformed chunked body from %s after the response: %s", self._peer(), exc)
                self._linger()
                return False
            self._refuse_body(RequestBodyError(f"malformed chunked body: {exc}"))
            return False
        if chunks.done:
            self._chunks = None
        return True

    def _check_pipeline_buffer(self) -> None:
        """Stop reading while the requests pipelined behind the current one fill the buffer."""
        if len(self._parser().trailing_data[0]) > _PIPELINE_BUFFER_BYTES:
            self._pause_reading(_PAUSE_PIPELINE)

    def _check_partial_head(self) -> None:
        """414 for a request line that is already too long before the head is complete."""
        limit = self.ctx.config.max_request_line_bytes
        buffered = self._parser().trailing_data[0]
        if len(buffered) > limit and b"\n" not in buffered[: limit + 2]:
            self.send_error(414, f"request line longer than {limit} bytes", None)

    def _on_request(self, request: h11.Request) -> None:
        ctx = self.ctx
        self._requests += 1
        ctx.stats.requests += 1
        try:
            head = check_request(request, self._head, ctx.head_limits)
        except HeadRefused as exc:
            self.send_error(exc.status, exc.detail, request)
            return
        if head.close:
            self._close_after_response = True
        chunked = head.chunked
        content_length = head.content_length
        if chunked:
            # The body's bytes already read (with the head) are checked before h11 yields them.
            checker = ChunkedChecker()
            read, end = self._head_read
            try:
                checker.feed(read[end:])
            except FramingRefused as exc:
                self.send_error(400, f"malformed chunked body: {exc}", request)
                return
            self._chunks = None if checker.done else checker
        has_body = chunked or bool(content_length)
        path = head.path
        environ = ctx.environ.build(
            request.method,
            request.target,
            request.http_version,
            head.fields,
            path,
            head.query,
            self.server,
            self.client,
            None,
        )
        if self._proxy is not None and self._proxy.tls:
            environ["wsgi.url_scheme"] = "https"  # the balancer ended TLS (PROXY v2 SSL TLV)
        if ctx.trusted_proxies is not None:
            apply_proxy_headers(environ, self.client[0] if self.client else None, ctx.trusted_proxies)
        local = None
        if ctx.local_paths and request.method in (b"GET", b"HEAD"):
            local = ctx.local_paths.get(path)
        exchange = Exchange(self, request, environ, has_body, local)
        self.exchange = exchange
        self._body_length = content_length
        if has_body:
            now = ctx.loop.time()
            self._body_received = 0
            self._body_started = self._last_read = now
            self._body_paused_total = 0.0
            self._body_paused_at = 0.0
            self._arm_body_timer()
        else:
            self._cancel_timer()
        exchange.start()

    def _on_body_data(self, data: bytes) -> None:
        exchange = self.exchange
        assert exchange is not None
        if exchange.state is DONE:  # draining a body the app did not read
            self._drained += len(data)
            if self._drained > _DRAIN_LIMIT_BYTES:
                # Closing with the client still sending would reset the connection, and a proxy
                # would lose the response it has not read yet: half-close and discard instead.
                self._linger()
            return
        self._body_received += len(data)
        limit = self.ctx.config.max_body_bytes
        if limit and self._body_received > limit:
            self._refuse_body(RequestBodyTooLarge(f"request body is over --max-body-bytes ({limit})"))
            return
        exchange.on_body(data)

    def _on_body_end(self, event: h11.EndOfMessage) -> bool:
        """Returns True when event processing must stop."""
        exchange = self.exchange
        assert exchange is not None
        if exchange.state is DONE:  # finished draining an unread body
            self._next_cycle()
            return True
        if self._timer_kind is _BODY:
            self._cancel_timer()
        if event.headers:
            config = self.ctx.config
            problem = check_fields(event.headers, config.max_header_bytes, config.max_header_count)
            if problem is not None:
                self._refuse_body(RequestTrailersTooLarge(f"trailers: {problem}"))
                return True
        exchange.on_body_end()
        return False

    def _refuse_body(self, exc: RequestBodyError) -> None:
        """Stop reading a body the app is consuming; its next read raises ``exc``."""
        error_log.info("%s from %s", exc, self._peer())
        exchange = self.exchange
        if exchange is not None and exchange.state is not DONE:
            exchange.body.fail(exc)
        self._close_after_response = True
        self._cancel_timer()
        self._pause_reading(_PAUSE_REFUSED)

    def _on_protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.state is not DONE:
            # The head was fine but the body is not: the app is already running, so tell it
            # through wsgi.input and close once its response is out.
            self._refuse_body(RequestBodyError(f"malformed request body: {exc}"))
            return
        if exchange is not None:  # error while draining after the response: just close
            self.close()
            return
        status = exc.error_status_hint
        if status == 501:
            # h11 knows only "chunked": tell malformed framing (400) from an unknown coding (501).
            status = wirecheck.transfer_encoding_status(self._head())
        self.send_error(status, str(exc), None)

    # --- lifecycle of a cycle ------------------------------------------------------------------

    def exchange_finished(self, exchange: Exchange) -> None:
        """The app's job is over and its response fully handed to the transport."""
        if self.lost or self._timer_kind is _LINGER:
            return
        if (
            exchange.response_complete
            and self._parser().their_state is h11.SEND_BODY
            and not self._close_after_response
        ):
            # The app answered without reading the whole body: read on and discard the rest
            # (bounded in size, and in time by the body timer) so the connection can be reused.
            self._drained = 0
            self._resume_reading(_PAUSE_BODY)
            self._process()
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        exchange = self.exchange
        if (
            exchange is not None
            and exchange.response_complete
            and self._parser().their_state in _REQUEST_ENDED
            and not self.ctx.draining
            and not self._close_after_response
        ):
            # A fresh parser per request: cheaper than h11's start_next_cycle, which needs our
            # side of h11's state machine driven through its send path (see response.py).
            buffered, closed = self._parser().trailing_data
            self.conn = None  # an idle connection holds no parser
            self.exchange = None
            self._chunks = None
            if buffered:
                buffered = self._scan_head(buffered)
                if self._timer_kind is _LINGER or self.transport.is_closing():
                    return  # the next head was refused
            if closed and not buffered:
                # The client half-closed and everything it sent is answered: we are done too
                # (before, the connection sat out --keep-alive first).
                self.close()
                return
            if buffered:
                self.conn = conn = self._new_parser()
                conn.receive_data(buffered)
                if closed:
                    conn.receive_data(b"")
            self._resume_reading(_PAUSE_PIPELINE | _PAUSE_BODY)
            if buffered:
                self._arm(_HEAD, self.ctx.config.header_timeout)
                self._process()  # a pipelined request is already here
            else:
                self._arm(_IDLE, self.ctx.config.keep_alive)
            return
        self.exchange = None
        if self.conn is not None and self.conn.their_state is h11.SEND_BODY:
            # The client may still be sending the body: a close now would reset the connection
            # before it (or the proxy in front) read the response. Half-close and discard.
            self._linger()
        else:
            self.close()

    @property
    def body_bytes_received(self) -> int:
        """Request body bytes received for the current request (when it has a body)."""
        return self._body_received

    def should_close_after_response(self) -> bool:
        """Whether the response being started must carry ``Connection: close``."""
        max_requests = self.ctx.config.max_requests_per_connection
        return (
            self.ctx.draining
            or self._close_after_response
            or self.ctx.config.keep_alive == 0
            or (max_requests != 0 and self._requests >= max_requests)
            # The client waits for 100 Continue that never came: we can't tell whether its body
            # will follow, so the connection can't be reused (RFC 9110 §10.1.1).
            or self.awaiting_continue()
            or (self.conn is not None and self.conn.their_state is h11.ERROR)
            or self._unread_body_too_large()
        )

    def _unread_body_too_large(self) -> bool:
        """More of the request body is still to come than we would read and discard after the
        response: the response says ``Connection: close`` instead of promising reuse."""
        length = self._body_length
        return (
            length is not None
            and length - self._body_received > _DRAIN_LIMIT_BYTES
            and self.conn is not None
            and self.conn.their_state is h11.SEND_BODY
        )

    def close_after_response(self) -> None:
        """The response being written ends the connection (it says ``Connection: close``)."""
        self._close_after_response = True

    def awaiting_continue(self) -> bool:
        """The client holds its body back until we send 100 Continue, which we have not."""
        exchange = self.exchange
        return (
            self.conn is not None
            and self.conn.they_are_waiting_for_100_continue
            and (exchange is None or (not exchange.continue_sent and exchange.framer is None))
        )

    def _parser(self) -> h11.Connection:
        """The current request's parser, where one must exist (a request is in progress)."""
        conn = self.conn
        assert conn is not None
        return conn

    def _new_parser(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.ctx.config.max_head_bytes)

    def shutdown(self) -> None:
        """The server is draining: close after the current response, or after a short grace.

        No connection is closed the moment the drain starts. One that has not had a request yet
        has just connected, and its request may be in the socket buffer; an idle keep-alive
        connection may have its client's next request on the wire (under load, clients send the
        next request as soon as the last answer arrives). Closing either would lose that request
        to a reset or a close without an answer. Each gets a short grace instead: a request that
        comes is answered with ``Connection: close``; a connection still idle then is closed.
        """
        if self.exchange is not None or (self.conn is not None and self.conn.trailing_data[0]):
            return
        grace = _drain_grace(self.ctx.config.header_timeout)
        self._arm(_HEAD if self._requests == 0 else _IDLE, grace)

    # --- errors --------------------------------------------------------------------------------

    def send_error(
        self,
        status: int,
        detail: str,
        request: Optional[h11.Request],
        extra_headers: Tuple[Tuple[bytes, bytes], ...] = (),
    ) -> None:
        """Answer a request we refuse, then half-close and linger so the client reads it."""
        reason = _REASONS.get(status, b"Bad Request")
        body = reason + b"\n"
        error_log.info("%d %s from %s: %s", status, reason.decode(), self._peer(), detail)
        exchange = self.exchange
        if (exchange is None or exchange.framer is None) and not self.lost:
            headers = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Date", self.ctx.date_header())]
            headers.extend(extra_headers)
            if self.ctx.server_header is not None:
                headers.append((b"Server", self.ctx.server_header))
            self.transport.write(simple_response(status, reason, headers, body))
            self.ctx.stats.response(status)
            if self.ctx.config.access_log:
                record = AccessRecord(
                    environ={"REMOTE_ADDR": self.client[0] if self.client else "-"},
                    request_line="-" if request is None else request_line(request),
                    status=status,
                    bytes_out=len(body),
                    bytes_in=0,
                    duration=0.0,
                    queue=0.0,
                    app=0.0,
                    disconnected=False,
                )
                log_access(self.ctx.access_formatter.format(record), self.ctx.loop)
        self._linger()

    def _linger(self) -> None:
        transport = self.transport
        if self.lost or transport.is_closing():
            return
        self.exchange = None
        if transport.can_write_eof():
            transport.write_eof()
            self._read_pauses = 0
            self._transport_paused = False
            transport.resume_reading()
            self._arm(_LINGER, _LINGER_SECONDS)
        else:
            self.close()

    # --- deadlines -----------------------------------------------------------------------------

    def _arm(self, kind: str, seconds: float) -> None:
        """Make ``kind`` the deadline, ``seconds`` from now (0 means none, except IDLE: close now)."""
        self._timer_kind = kind
        if not seconds and kind is not _IDLE:
            self._deadline = None
            return
        ctx = self.ctx
        deadline = ctx.loop.time() + seconds
        self._deadline = deadline
        wheel = ctx.deadlines
        slot = self._timer_slot
        if slot is not None:
            if wheel.slot_time(slot) <= deadline:
                return  # our slot comes first; we re-file then for the rest
            wheel.remove(self, slot)
        self._timer_slot = wheel.add(self, deadline)

    def _arm_body_timer(self) -> None:
        config = self.ctx.config
        seconds = config.body_timeout
        if config.body_min_rate:
            seconds = min(seconds, _MIN_RATE_CHECK_SECONDS) if seconds else _MIN_RATE_CHECK_SECONDS
        self._arm(_BODY, seconds)

    def _cancel_timer(self) -> None:
        """No read-side deadline for now; its kind stays, so arrivals are still classified right."""
        self._deadline = None

    def _stop_timer(self) -> None:
        """Leave the deadline wheel: the connection is over, so nothing keeps it referenced."""
        self._deadline = None
        if self._timer_slot is not None:
            self.ctx.deadlines.remove(self, self._timer_slot)
            self._timer_slot = None

    def on_deadline(self) -> None:
        """Our slot in the deadline wheel has come. [loop, from DeadlineWheel]"""
        self._timer_slot = None
        deadline = self._deadline
        if deadline is None:
            return
        ctx = self.ctx
        if ctx.loop.time() + _TIMER_SLACK_SECONDS < deadline:
            self._timer_slot = ctx.deadlines.add(self, deadline)  # it moved later since we filed
            return
        self._deadline = None
        kind = self._timer_kind
        if kind is _IDLE:
            if self.exchange is None:
                error_log.debug("closing idle connection from %s", self._peer())
                self.ctx.stats.timeouts["idle"] += 1
                self.close()
        elif kind is _HEAD:
            if self.exchange is None:
                self.ctx.stats.timeouts["header"] += 1
                if self.conn is not None and self.conn.trailing_data[0]:
                    self.send_error(408, "request head not complete within --header-timeout", None)
                else:
                    self.close()
        elif kind is _BODY:
            self._check_body_progress()
        elif kind is _LINGER:
            self.close()

    def _check_body_progress(self) -> None:
        """The lazy BODY timer fired: time out, or re-arm for what is left."""
        exchange = self.exchange
        if exchange is None or (exchange.state is DONE and self._parser().their_state is not h11.SEND_BODY):
            return
        config = self.ctx.config
        now = self.ctx.loop.time()
        if self._read_pauses & ~_PAUSE_PIPELINE or self.awaiting_continue():
            # We are not reading (the app is slow, no thread yet, or the body not yet invited
            # with 100 Continue): not the client's fault.
            self._arm_body_timer()
            return
        idle = now - self._last_read
        if config.body_timeout and idle >= config.body_timeout:
            self._body_timed_out(f"no request body bytes for {idle:.1f}s (--body-timeout)")
            return
        if config.body_min_rate:
            active = now - self._body_started - self._body_paused_total
            if active >= _MIN_RATE_GRACE_SECONDS and self._body_received / active < config.body_min_rate:
                rate = self._body_received / active
                self._body_timed_out(f"request body at {rate:.0f} B/s is under --body-min-rate")
                return
        self._arm_body_timer()

    def _body_timed_out(self, detail: str) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.state is DONE:
            self.close()  # we were only draining an unread body
            return
        self.ctx.stats.timeouts["body"] += 1
        self._refuse_body(RequestBodyTimeout(detail))

    def _on_write_stalled(self) -> None:
        self._write_timer = None
        if self.write_paused and not self.lost:
            self.ctx.stats.timeouts["write"] += 1
            error_log.info(
                "client %s read nothing for %.1fs (--write-timeout); aborting",
                self._peer(),
                self.ctx.config.write_timeout,
            )
            self.abort()

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

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
        self._stop_timer()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._stop_timer()
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
        if not self._read_pauses:
            self._body_paused_at = self.ctx.loop.time()
        self._read_pauses |= reason
        if reason != _PAUSE_POOL:
            self._pause_transport()
        # Waiting for a thread pauses lazily: most clients send nothing more until answered,
        # and pausing and resuming a transport costs two system calls (and on the stdlib loop
        # measurably more, in selector bookkeeping). data_received pauses for real if bytes come.

    def _pause_transport(self) -> None:
        if not self._transport_paused and not self.lost and not self.transport.is_closing():
            self.transport.pause_reading()
            self._transport_paused = True

    def _resume_reading(self, reasons: int) -> None:
        if not self._read_pauses & reasons:
            return
        self._read_pauses &= ~reasons
        if not self._read_pauses:
            now = self.ctx.loop.time()
            self._body_paused_total += now - self._body_paused_at
            self._last_read = now  # the idle clock restarts when we ask for bytes again
            if self._transport_paused:
                self._transport_paused = False
                if not self.lost and not self.transport.is_closing():
                    self.transport.resume_reading()

    def _peer(self) -> str:
        return self.client[0] if self.client else "unix"


class _Proxied:
    """What a connection's PROXY header changed: the client address is now the balancer's client."""

    __slots__ = ("peer_ip", "tls")

    def __init__(self, peer_ip: Optional[str], tls: bool) -> None:
        self.peer_ip = peer_ip  # the balancer's own address: --max-connections-per-ip counted it
        self.tls = tls


def _drain_grace(header_timeout: float) -> float:
    return min(header_timeout, _DRAIN_FIRST_REQUEST_SECONDS) if header_timeout else _DRAIN_FIRST_REQUEST_SECONDS
