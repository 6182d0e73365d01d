"""One HTTP response from a mounted ASGI app's messages, framed and written. [loop]

Shared by a request's ``http.response.start`` / ``http.response.body`` (``asgi_exchange``) and a
WebSocket denial's ``websocket.http.response.start`` / ``...body`` (``websocket``), so both follow
the same rules:

* the start message is checked (``asgi.messages``) and held until the first body message, so a
  response sent in one message gets a ``Content-Length``, the cheapest framing; never a 204 or a
  304 (RFC 9110 §8.6: a 304's length is the 200's, which only the app knows), nor an empty answer
  to HEAD (the GET's body need not be empty);
* the body is framed as the head says (``http.response.BodyFramer``): nothing for 204, 304 and
  HEAD, cut at the app's Content-Length (then the connection closes), chunked otherwise;
* a body that breaks its framing (fewer bytes than its Content-Length) closes the connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

import h11

from ..asgi.messages import response_head
from ..http import plain
from ..http.response import NO_BODY, NO_CONTENT_STATUSES, BodyFramer, FramingError, ResponseHead
from ..log import error_log
from .exchange import open_response

if TYPE_CHECKING:
    from .protocol import HTTPProtocol


class ASGIResponse:
    """The response of one request to a mounted app, from its start message to its end."""

    __slots__ = ("_has_length", "_head", "_name", "bytes_out", "complete", "framer", "protocol", "request", "status")

    def __init__(self, protocol: HTTPProtocol, request: h11.Request, name: str) -> None:
        self.protocol = protocol
        self.request = request
        self._name = name  # for log lines: the request and the mount
        self._head: Optional[ResponseHead] = None  # from the start message, until the first body
        self._has_length = False
        self.framer: Optional[BodyFramer] = None  # set when the head is written
        self.status = 0
        self.bytes_out = 0
        self.complete = False  # the whole response is handed to the transport

    @property
    def started(self) -> bool:
        """The start message has come (the head may still wait for the first body)."""
        return self._head is not None or self.framer is not None

    def start(self, message: Any) -> None:
        """The start message: checked now (TypeError, ValueError), written with the first body."""
        self._head, self._has_length = response_head(message)
        self.status = self._head.status_code

    def plain(self, status: int) -> None:
        """A plain-text response of the server's own (``http.plain``), when the app gave none:
        a 500, the 413 of a body that failed, the 403 of a refused WebSocket."""
        self._head = plain.head(status)
        self._has_length = True
        self.status = status
        self.body(plain.body(status), False)

    def body(self, body: bytes, more: bool) -> bool:
        """Write a body message (the head first, if not yet); False if the response broke its
        framing and the connection is closing."""
        protocol = self.protocol
        out: List[Any] = []
        if self.framer is None:
            head = self._head
            assert head is not None
            if (
                not more
                and not self._has_length
                and head.status_code not in NO_CONTENT_STATUSES
                and (body or self.request.method != b"HEAD")
            ):
                head.headers.append((b"content-length", b"%d" % len(body)))
            data, self.framer = open_response(protocol, self.request, head)
            self._head = None
            out.append(data)
        framer = self.framer
        try:
            if body and framer.kind is not NO_BODY:
                excess = framer.excess
                out.extend(framer.data(body))
                self.bytes_out += len(body) - (framer.excess - excess)
                if framer.excess and not excess:
                    # Past its Content-Length: the declared bytes are the response; then close.
                    error_log.error("%s: the app sent more than its Content-Length; closing after it", self._name)
                    protocol.close_after_response()
                    more = False
            if not more:
                out.append(framer.end())
                self.complete = True
        except FramingError as exc:
            error_log.error("%s: response violates HTTP framing: %s; closing", self._name, exc)
            protocol.writelines(out)
            protocol.close()
            return False
        protocol.writelines(out)
        return True
