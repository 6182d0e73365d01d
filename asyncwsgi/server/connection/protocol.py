"""One client connection: bytes in, h11 events, one request cycle at a time, bytes out. [loop]

Rules this module keeps (RFC 9112):

* Requests on a connection are answered in order: a pipelined request waits in h11's buffer
  until the previous response is complete (``PAUSED``), and reading stops if that buffer grows.
* A request h11 cannot parse gets its ``error_status_hint`` (400, 431, 501) and
  ``Connection: close``; so does one h11 accepts but we must not (``http.head``,
  ``http.wirecheck``) and one over a configured limit (414, 431, 413). The answer is written by
  ``refusals``; the connection is then half-closed and drained briefly (LINGER), so the client
  reads the answer instead of a reset.
* Reading the socket is paused for independent reasons (a full ``wsgi.input`` buffer, no free
  thread, a buffered pipelined request, a body we gave up on).

The class is built in layers, each a base class (so an idle connection pays for one object):
``flow.FlowControl`` (read pauses, write grant, write deadline, sendfile), ``wireinput.WireInput``
(the byte checks before h11), ``bodyinput.BodyInput`` (the request body: limits, rate, drain) and
this class, the connection's life in phases (``phases.Phase``). It is the ``Connection`` of the
seam (``seam.py``) to the request cycle it serves, which ``dispatch`` makes for each head.

Each phase has one read-side deadline, enforced
here on the loop so that no thread waits on a slow client (``deadlines.ReadDeadline``, lazy:
a busy connection costs no timer operation per request). Writing has its own deadline,
``--write-timeout``, while the transport's buffer is full.

An idle connection holds no h11 parser: one is made when the next request's first bytes come.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import h11

from ...errors import RequestBodyError
from ...http import direct_body, wirecheck
from ...http.head import HeadRefused, check_request
from ...http.proxyprotocol import Preamble
from ...log import error_log
from ..deadlines import ReadDeadline
from ..dispatch import open_cycle
from ..seam import PAUSE_BODY, Cycle, Upgraded
from .bodyinput import HEAD_SENT, BodyInput
from .flow import PAUSE_PIPELINE
from .phases import CLOSED, DRAIN, HEAD, IDLE, LINGER, REQUEST, UPGRADED, Phase
from .refusals import log_refusal, refusal

if TYPE_CHECKING:
    from ..context import ServerContext

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
# While the server drains, how long a new or idle connection has to send its next request.
_DRAIN_FIRST_REQUEST_SECONDS = 1.0
# Seconds we keep reading (and discarding) after sending an error, before closing.
_LINGER_SECONDS = 2.0


class HTTPProtocol(BodyInput):
    """One connection's life: its phase, its requests in order, and their refusals."""

    __slots__ = ("_deadline", "_requests", "conn", "cycle", "phase", "server", "upgraded")

    def __init__(self, ctx: ServerContext, client: Optional[Tuple[str, str]]) -> None:
        super().__init__(ctx, client)
        self.phase = HEAD
        self.conn: Optional[h11.Connection] = None  # made when a request's first bytes arrive
        self.cycle: Optional[Cycle] = None  # the request being served (dispatch makes it)
        self.upgraded: Optional[Upgraded] = None  # a WebSocket stream, once the handshake is done
        self.server: Tuple[str, str] = ("localhost", "80")
        self._deadline = ReadDeadline(ctx.deadlines, self)
        self._requests = 0

    @property
    def lost(self) -> bool:
        return self.phase is CLOSED

    @property
    def closing(self) -> bool:
        """[seam] Closed, closing or lost: nothing written now reaches the client."""
        return self.phase is CLOSED or self.transport.is_closing()

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
            self._proxy = Preamble(None if self.client is None else self.client[0])
        # The first head is due within --header-timeout of the connection (a later TLS
        # handshake falls inside this deadline too). While draining, a new connection still gets
        # its first request answered (its client has most likely sent it already), sooner.
        self._enter(HEAD, _drain_grace(ctx.config.header_timeout) if ctx.draining else ctx.config.header_timeout)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase is LINGER:
            return
        if phase is UPGRADED:
            self.upgraded.feed(data)  # type: ignore[union-attr]
            return
        if phase is IDLE:
            # The first byte of the next request: from now on its head is on the clock.
            self._enter(HEAD, self.ctx.config.header_timeout)
        elif self._body is not None:
            self._body.last_read = self.ctx.loop.time()
        self.pause_if_reading()  # bytes while we lazily wait for a thread: now stop reading
        if self._proxy is not None and self._proxy.header is None:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self.cycle is None:
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
                if self.phase is not REQUEST or self.transport.is_closing():
                    return  # refused: nothing after the head is read
                data = memoryview(data)[end:]  # type: ignore[assignment]  # no copy; read like bytes
        elif self._chunks is not None and not self._check_chunks(data):
            return
        conn = self.conn
        if conn is None:
            conn = self.conn = self._new_parser()
        elif self.cycle is not None:
            split = direct_body.take(conn, data)
            if split is not None:  # a Content-Length body's bytes: straight to the app
                body, data, complete = split
                self._on_body_data(body)
                if not complete or self.phase is LINGER or self.transport.is_closing():
                    return
        if data:
            conn.receive_data(data)
        if self.cycle is not None and conn.their_state in _REQUEST_ENDED:
            # Pipelined bytes behind a complete request: nothing to parse until its response is
            # out, but don't buffer without bound. (So the buffer can pass the limit by one read.)
            self._check_pipeline_buffer()
            return
        self._process()

    def eof_received(self) -> bool:
        if self.phase is LINGER:
            self.transport.close()
            return False
        if self.phase is UPGRADED:
            self.upgraded.feed_eof()  # type: ignore[union-attr]
            return False
        conn = self.conn
        if conn is None:  # idle between requests: the client is done with us
            self.close()
            return False
        cycle = self.cycle
        if cycle is not None and not cycle.done:
            cycle.client_closed(conn.their_state is h11.SEND_BODY)
            if self.phase is LINGER or self.closing:
                return False  # the cycle refused a request whose body will never be whole
        conn.receive_data(b"")
        self._process()
        # Keep the write side open: a response in progress still goes out (half-close).
        return True

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.phase = CLOSED
        self._deadline.stop()
        loan = self._loan
        answered = loan is not None and loan.answered  # by the app's thread: the loop has yet to hear
        self._end_flow()
        ctx = self.ctx
        ctx.connections.discard(self)
        proxy = self._proxy  # admitted under the balancer's address
        ctx.gate.release(proxy.peer_ip if proxy is not None else None if self.client is None else self.client[0])
        cycle = self.cycle
        if cycle is not None and not cycle.done:
            if not answered:
                ctx.stats.disconnects += 1
            cycle.connection_lost()
        if ctx.on_connection_lost is not None:
            ctx.on_connection_lost()

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
                if self.phase is LINGER or self.transport.is_closing():
                    return
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
                if self.phase is not REQUEST or self.transport.is_closing():
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
                if self.cycle is None:
                    self.close()
                return  # else: the response in progress still goes out, then we close

    def _check_pipeline_buffer(self) -> None:
        """Stop reading while the requests pipelined behind the current one fill the buffer."""
        if len(self._parser().trailing_data[0]) > _PIPELINE_BUFFER_BYTES:
            self.pause_reading(PAUSE_PIPELINE)

    def _check_partial_head(self) -> None:
        """414 for a request line that is already too long before the head is complete."""
        limit = self.ctx.config.max_request_line_bytes
        buffered = self._parser().trailing_data[0]
        if len(buffered) > limit and b"\n" not in buffered[: limit + 2]:
            self.refuse(414, f"request line longer than {limit} bytes", None)

    def _on_request(self, request: h11.Request) -> None:
        ctx = self.ctx
        self._requests += 1
        ctx.stats.requests += 1
        try:
            head = check_request(request, self._head, ctx.head_limits)
        except HeadRefused as exc:
            self.refuse(exc.status, exc.detail, request)
            return
        if head.close:
            self._close_after_response = True
        chunked = head.chunked
        if chunked and not self._start_chunks(request):
            return
        has_body = chunked or bool(head.content_length)
        proxy = self._proxy
        tls_ended = proxy is not None and proxy.header is not None and proxy.header.tls
        environ = ctx.environ_for(request, head, self.server, self.client, tls_ended)
        cycle = open_cycle(ctx, self, request, head, environ, has_body)
        if isinstance(cycle, tuple):
            self.refuse(*cycle, request)
            return
        self.cycle = cycle
        if has_body:
            self._enter(REQUEST, self._start_body(head.content_length))
        else:
            self._body = None
            self._enter(REQUEST, 0)
        cycle.start()

    def _on_protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        if self.phase is REQUEST:
            # The head was fine but the body is not: the app is already running, so tell it
            # through wsgi.input and close once its response is out.
            self._refuse_body(RequestBodyError(f"malformed request body: {exc}"))
            return
        if self.phase is DRAIN:  # error while draining after the response: just close
            self.close()
            return
        status = exc.error_status_hint
        if status == 501:
            # h11 knows only "chunked": tell malformed framing (400) from an unknown coding (501).
            status = wirecheck.transfer_encoding_status(self._head())
        self.refuse(status, str(exc), None)

    # --- lifecycle of a cycle ------------------------------------------------------------------

    def cycle_finished(self, cycle: Cycle) -> None:
        """[seam] The cycle's work is over and its response handed to the transport."""
        if self.phase is not REQUEST or cycle is not self.cycle:
            return  # closed, or refused meanwhile
        reusable = cycle.reusable
        if reusable and self._start_drain():
            self.phase = DRAIN
            self.resume_reading(PAUSE_BODY)
            self._process()  # what came of the body meanwhile
            return
        self._next_cycle(reusable)

    def _next_cycle(self, reusable: bool) -> None:
        """The request and its response are over (``reusable``: the response is complete as
        framed): on to the next request, or close."""
        if reusable and self._parser().their_state in _REQUEST_ENDED and not self._close_after_response:
            # (While draining, only a response whose head went out before the drain began gets
            # here, as every later one says Connection: close. It promised to keep the
            # connection, and its client may send the next request the moment it ends: that
            # request gets its answer, with Connection: close, within the drain's grace.)
            # A fresh parser per request: cheaper than h11's start_next_cycle, which needs our
            # side of h11's state machine driven through its send path (see response.py).
            buffered, closed = self._parser().trailing_data
            self.conn = None  # an idle connection holds no parser
            self.cycle = None
            self._sent = 0
            self._body = None
            self._chunks = None
            if buffered:
                buffered = self._scan_head(buffered)
                if self.phase is LINGER or self.transport.is_closing():
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
            self.resume_reading(PAUSE_PIPELINE | PAUSE_BODY)
            if buffered:
                self._enter(HEAD, self.ctx.config.header_timeout)
                self._process()  # a pipelined request is already here
            elif self.ctx.draining:
                self._enter(IDLE, _drain_grace(self.ctx.config.header_timeout))
            else:
                self._enter(IDLE, self.ctx.config.keep_alive)
            return
        self.cycle = None
        if self.conn is not None and self.conn.their_state is h11.SEND_BODY:
            # The client may still be sending the body: a close now would reset the connection
            # before it (or the proxy in front) read the response. Half-close and discard.
            self.linger()
        else:
            self.close()

    def _parser(self) -> h11.Connection:
        """The current request's parser, where one must exist (a request is in progress)."""
        conn = self.conn
        assert conn is not None
        return conn

    def _new_parser(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.ctx.config.max_head_bytes)

    def upgrade(self, stream: Upgraded) -> None:
        """[seam] A mounted app accepted a WebSocket: from now on the connection's bytes go to
        its stream, those the client sent behind the handshake (h11 holds them) first."""
        buffered = self._parser().trailing_data[0]
        self.upgraded = stream
        self.conn = None
        self._body = None
        self._enter(UPGRADED, 0)
        self.resume_reading(PAUSE_PIPELINE)
        if buffered:
            stream.feed(bytes(buffered))

    def shutdown(self) -> None:
        """The server is draining: close after the current response, or after a short grace.

        No connection is closed the moment the drain starts. One that has not had a request yet
        has just connected, and its request may be in the socket buffer; an idle keep-alive
        connection may have its client's next request on the wire (under load, clients send the
        next request as soon as the last answer arrives). Closing either would lose that request
        to a reset or a close without an answer. Each gets a short grace instead: a request that
        comes is answered with ``Connection: close``; a connection still idle then is closed.
        """
        if self.phase is UPGRADED:
            self.upgraded.going_away()  # type: ignore[union-attr]  # close frame 1001
            return
        if self.phase is not IDLE and self.phase is not HEAD:
            return  # a request in progress ends with Connection: close; LINGER ends by itself
        if self.conn is not None and self.conn.trailing_data[0]:
            return  # part of a head is here: its --header-timeout stands
        self._enter(self.phase, _drain_grace(self.ctx.config.header_timeout))

    # --- deadlines -----------------------------------------------------------------------------

    def _enter(self, phase: Phase, seconds: float) -> None:
        """Move to ``phase``, its deadline ``seconds`` from now (0: none, except IDLE: close now)."""
        self.phase = phase
        if seconds or phase is IDLE:
            self._deadline.set(seconds)
        else:
            self._deadline.clear()

    def deadline_passed(self) -> None:
        """The current phase's read deadline has passed. [loop, from the DeadlineWheel]"""
        phase = self.phase
        if phase is IDLE:
            error_log.debug("closing idle connection from %s", self._peer())
            self.ctx.stats.timeouts["idle"] += 1
            self.close()
        elif phase is HEAD:
            self.ctx.stats.timeouts["header"] += 1
            if self.conn is not None and self.conn.trailing_data[0]:
                self.refuse(408, "request head not complete within --header-timeout", None)
            else:
                self.close()
        elif phase is LINGER:
            self.close()
        elif phase is REQUEST or phase is DRAIN:
            self._check_body()

    # --- flow control hooks (flow.FlowControl; the reading ones are BodyInput's) ---------------

    def _app_writes_blocked(self) -> None:
        if self.cycle is not None:
            self.cycle.writes_blocked()

    def _app_writes_unblocked(self) -> None:
        if self.cycle is not None:
            self.cycle.writes_unblocked()

    def _client_reset(self) -> None:
        if self.cycle is not None:
            self.cycle.client_reset()

    # --- what dispatch reads (dispatch.Arrival) -------------------------------------------------

    def expects_continue(self) -> bool:
        return self._parser().they_are_waiting_for_100_continue

    def head_bytes(self) -> bytes:
        return self._head()

    def peer_ip(self) -> Optional[str]:
        peer = self.transport.get_extra_info("peername")
        return peer[0] if isinstance(peer, tuple) else None

    # --- errors --------------------------------------------------------------------------------

    def refuse(
        self,
        status: int,
        detail: str,
        request: Optional[h11.Request],
        headers: Sequence[Tuple[bytes, bytes]] = (),
    ) -> None:
        """[seam] Answer a request we refuse (unless a response has begun), then half-close and
        linger so the client reads it."""
        log_refusal(status, self._peer(), detail)
        self._recall_loan()
        if not self._sent & HEAD_SENT and not self.lost:
            self.transport.write(refusal(self.ctx, status, request, self.client, headers))
        self.linger()

    def linger(self) -> None:
        """[seam] Half-close, then read and discard what the client still sends for a while
        before closing (LINGER): a client still sending reads what we wrote instead of a reset."""
        transport = self.transport
        if self.lost or transport.is_closing():
            return
        self.cycle = None
        self._recall_loan()
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the client has reset already (ENOTCONN): nothing to linger for
                self.abort()
                return
            self._read_everything()
            self._enter(LINGER, _LINGER_SECONDS)
        else:
            self.close()

    # --- transport helpers ---------------------------------------------------------------------

    def close(self) -> None:
        self._deadline.stop()
        self._recall_loan()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        self._deadline.stop()
        self._recall_loan()
        if self.transport is not None:
            self.transport.abort()


def _drain_grace(header_timeout: float) -> float:
    return min(header_timeout, _DRAIN_FIRST_REQUEST_SECONDS) if header_timeout else _DRAIN_FIRST_REQUEST_SECONDS
