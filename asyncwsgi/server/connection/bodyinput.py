"""The current request's body on its way to the app: counted, limited, timed, drained. [loop]

``HTTPProtocol`` is built on ``BodyInput`` (itself built on ``wireinput.WireInput``). This layer
takes each piece of a request body h11 (or ``http.direct_body``) yields and decides what it
means:

* **to the app**, through the request cycle, while the request is in REQUEST; ``--max-body-bytes``
  past which the body is refused (413), trailers held to the head's limits (431);
* **timed**: ``--body-timeout`` and ``--body-min-rate``, checked when the lazy BODY deadline
  comes (``bodyrate.BodyMeter`` keeps the clock; a span in which we did not read is not the
  client's);
* **refused**: before the app runs (its body was being buffered) the client is answered here;
  once it runs, its next ``wsgi.input`` read raises and the connection closes after the response;
* **drained** (DRAIN): after a response sent before the body was read, up to
  ``DRAIN_LIMIT_BYTES`` are read and discarded so the connection can be reused.

A base class rather than a member object for the reason ``flow`` gives. The connection's phase,
parser, cycle and deadline are the protocol's; this layer reads them and calls back through
the hooks at the top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import h11

from ...errors import RequestBodyError, RequestBodyTimeout, RequestBodyTooLarge, RequestTrailersTooLarge
from ...http.head import check_fields
from ...http.response import CONTINUE, BodyFramer, ResponseHead, start_response
from ...http.wirecheck import FramingRefused
from ...log import error_log
from ...wsgi.bridge import SocketLoan
from ..seam import Cycle
from .bodyrate import BodyMeter, check_interval
from .flow import PAUSE_REFUSED
from .phases import DRAIN, LINGER, REQUEST, Phase
from .wireinput import WireInput

if TYPE_CHECKING:
    from ..context import ServerContext
    from ..deadlines import ReadDeadline

# Request body bytes we read and discard after the app answered without reading it all.
DRAIN_LIMIT_BYTES = 1024 * 1024
# What has gone out for the current request (BodyInput._sent, a bit set).
CONTINUE_SENT = 1  # 100 Continue
HEAD_SENT = 2  # the response's head


class BodyInput(WireInput):
    """Per-request body state of a connection; the protocol owns the rest."""

    __slots__ = ("_body", "_close_after_response", "_drained", "_sent")

    # The protocol's (declared here for the type checker; the slots are HTTPProtocol's).
    phase: Phase
    conn: Optional[h11.Connection]
    cycle: Optional[Cycle]
    _deadline: ReadDeadline
    _requests: int  # requests on this connection so far

    def __init__(self, ctx: ServerContext, client: Optional[Tuple[str, str]]) -> None:
        super().__init__(ctx, client)
        self._body: Optional[BodyMeter] = None  # the current request's body, if it has one
        self._drained = 0
        self._close_after_response = False
        self._sent = 0  # CONTINUE_SENT, HEAD_SENT: what has gone out for the current request

    # --- hooks ---------------------------------------------------------------------------------

    def linger(self) -> None:
        """Half-close and discard input until the client has read what we sent."""
        raise NotImplementedError

    def _next_cycle(self, reusable: bool) -> None:
        """The request and its response are over: on to the next one, or close."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # --- the body, piece by piece --------------------------------------------------------------

    def _start_body(self, length: Optional[int]) -> float:
        """A request with a body is starting; returns its first BODY deadline (seconds)."""
        config = self.ctx.config
        self._body = BodyMeter(self.ctx.loop.time(), length)
        return check_interval(config.body_timeout, config.body_min_rate)

    def _on_body_data(self, data: bytes) -> None:
        if self.phase is DRAIN:  # a body the app did not read
            self._drained += len(data)
            if self._drained > DRAIN_LIMIT_BYTES:
                # Closing with the client still sending would reset the connection, and a proxy
                # would lose the response it has not read yet: half-close and discard instead.
                self.linger()
            return
        cycle = self.cycle
        body = self._body
        assert cycle is not None and body is not None
        body.received += len(data)
        limit = self.ctx.config.max_body_bytes
        if limit and body.received > limit:
            self._refuse_body(RequestBodyTooLarge(f"request body is over --max-body-bytes ({limit})"))
            return
        cycle.on_body(data)

    def _on_body_end(self, event: h11.EndOfMessage) -> bool:
        """Returns True when event processing must stop."""
        if self.phase is DRAIN:  # finished draining an unread body (a reusable response's)
            self._next_cycle(True)
            return True
        if self._body is None:
            return False  # a request without a body: its cycle expects none, and nothing is timed
        cycle = self.cycle
        assert cycle is not None
        self._deadline.clear()
        if event.headers:
            config = self.ctx.config
            problem = check_fields(event.headers, config.max_header_bytes, config.max_header_count)
            if problem is not None:
                self._refuse_body(RequestTrailersTooLarge(f"trailers: {problem}"))
                return True
        cycle.on_body_end()
        return False

    def _chunks_refused(self, exc: FramingRefused) -> None:
        if self.phase is DRAIN:
            # Draining a body the app did not read, its response already out: just end.
            error_log.info("malformed chunked body from %s after the response: %s", self._peer(), exc)
            self.linger()
        else:
            self._refuse_body(RequestBodyError(f"malformed chunked body: {exc}"))

    def _refuse_body(self, exc: RequestBodyError) -> None:
        """Stop reading a body that failed: the cycle answers it if the app has not run yet (the
        body was being buffered); else the app's next read raises ``exc``."""
        cycle = self.cycle
        if self.phase is REQUEST and cycle is not None:
            cycle.body_failed(exc)
            if self.phase is LINGER or self.closing:
                return  # refused, and the connection ends
        error_log.info("%s from %s", exc, self._peer())
        self._close_after_response = True
        self._deadline.clear()
        self.pause_reading(PAUSE_REFUSED)

    def _start_drain(self) -> bool:
        """The response is out but the body is not all read: whether to read on and discard the
        rest (bounded in size, and in time by the body deadline) so the connection can be reused.
        False when the connection is not to be reused anyway."""
        conn = self.conn
        if conn is None or conn.their_state is not h11.SEND_BODY or self._close_after_response:
            return False
        self._drained = 0
        return True

    def _check_body(self) -> None:
        """The BODY deadline came: time out, or set it again for what is left."""
        body = self._body
        conn = self.conn
        if body is None or conn is None or conn.their_state is not h11.SEND_BODY:
            return
        config = self.ctx.config
        interval = check_interval(config.body_timeout, config.body_min_rate)
        if self.reading_paused or self.awaiting_continue():
            # We are not reading (the app is slow, no thread yet, or the body not yet invited
            # with 100 Continue): not the client's fault.
            self._deadline.set(interval)
            return
        problem = body.fault(self.ctx.loop.time(), config.body_timeout, config.body_min_rate)
        if problem is None:
            self._deadline.set(interval)
        elif self.phase is DRAIN:
            self.close()  # we were only draining an unread body
        else:
            self.ctx.stats.timeouts["body"] += 1
            self._refuse_body(RequestBodyTimeout(problem))

    # --- the continue, and what the response may promise ----------------------------------------

    def open_response(self, request: h11.Request, head: ResponseHead, close: bool = False) -> Tuple[bytes, BodyFramer]:
        """[seam] The head's bytes and the body's framer, with the connection's say on keep-alive
        (a response that says ``Connection: close`` makes the connection close after it)."""
        data, framer, closes = start_response(
            head,
            head_request=request.method == b"HEAD",
            http11=request.http_version >= b"1.1",
            close=close or self._should_close(),
            extra=self.ctx.header_lines(),
        )
        if closes:
            self._close_after_response = True
        self._sent |= HEAD_SENT
        return data, framer

    def send_continue(self) -> None:
        """[seam] The app's first body read: invite the body if the client waits for it."""
        if self.awaiting_continue() and not self.closing:
            self._sent |= CONTINUE_SENT
            self.write(CONTINUE)

    def lend_socket(self, request: h11.Request) -> Optional[SocketLoan]:
        """[seam] The socket for the app's thread to write a whole response to ``request``
        itself (``bridge.SocketLoan``), with the connection's say on keep-alive as it stands now;
        None where the loop must write it. Only for a request without a body: one with a body
        may still owe 100 Continue, or leave a body unread that decides keep-alive later."""
        if self._sent or self._body is not None:
            return None
        return self._lend(self.ctx, request.method == b"HEAD", request.http_version >= b"1.1", self._should_close())

    def response_written(self, closes: bool) -> None:
        """[seam] The app's thread wrote a whole response on the lent socket (``closes``: it
        said the connection ends after it)."""
        self._recall_loan()
        self._sent |= HEAD_SENT
        if closes:
            self._close_after_response = True

    def _lent_socket_used(self) -> None:
        self._sent |= HEAD_SENT  # a refusal now would follow a response on the wire: none is written

    def _should_close(self) -> bool:
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

    def awaiting_continue(self) -> bool:
        """The client holds its body back until we send 100 Continue, which we have not (nor
        a response: that answers it too)."""
        return not self._sent and self.conn is not None and self.conn.they_are_waiting_for_100_continue

    def _unread_body_too_large(self) -> bool:
        """More of the request body is still to come than we would read and discard after the
        response: the response says ``Connection: close`` instead of promising reuse."""
        unread = None if self._body is None else self._body.unread()
        return (
            unread is not None
            and unread > DRAIN_LIMIT_BYTES
            and self.conn is not None
            and self.conn.their_state is h11.SEND_BODY
        )

    # --- flow control hooks (flow.FlowControl) --------------------------------------------------

    def _reading_stopped(self) -> None:
        if self._body is not None:
            self._body.paused(self.ctx.loop.time())

    def _reading_restarted(self) -> None:
        if self._body is not None:
            self._body.resumed(self.ctx.loop.time())  # its idle clock restarts
