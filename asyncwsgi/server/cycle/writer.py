"""One response through the connection: its head, its body framed, files sent as they are. [loop]

A base class of every cycle that answers over HTTP (the WSGI cycle, the probes, a mounted ASGI
app's response and a WebSocket's denial), so each frames a response the same way (RFC 9112 §6.3):
the head goes out through ``Connection.open_response``, which adds the connection's say on
keep-alive; the body is framed as that head says (``http.response.BodyFramer``): nothing for HEAD,
204 and 304, exactly the app's Content-Length, chunked without one. A base class rather than an
object of its own: a request pays for no extra allocation.

Callers gather the pieces of one hand-off in a list (``_pieces``) and write them together (one
send).
"""

from __future__ import annotations

from typing import Any, List, Optional

import h11

from ...http.response import NO_BODY, BodyFramer, ResponseHead
from ..seam import Connection

# Connection.sendfile is asked for at most this much at a time: each call is bounded by
# --write-timeout, so a client that stops reading is noticed between slices.
SENDFILE_SLICE_BYTES = 1024 * 1024


class ResponseWriter:
    """The response half of a cycle: framing state, and the bytes it counts for the access log."""

    __slots__ = ("bytes_out", "connection", "cut", "framer", "request", "response_complete", "reusable", "status")

    def __init__(self, connection: Connection, request: h11.Request) -> None:
        self.connection = connection
        self.request = request
        self.framer: BodyFramer = _NOT_STARTED  # the head's framing, once the head is written
        self.status = 0
        self.bytes_out = 0  # body bytes sent, as the access log counts them
        self.response_complete = False  # the whole response is handed to the connection
        self.cut = False  # the body passed its Content-Length: it was cut there, the connection ends
        self.reusable = False  # complete as framed, and not cut: the connection may go on

    @property
    def response_started(self) -> bool:
        return self.framer is not _NOT_STARTED

    def _pieces(self, out: List[Any], head: Optional[ResponseHead], body: Any, end: bool, close: bool = False) -> bool:
        """The pieces of one hand-off into ``out``: the head, if given, opens the response (from
        then on the body is framed as it says; ``close``: it ends the connection); then ``body``
        framed; then, with ``end``, what ends the body (FramingError if it is short of its
        Content-Length). False when ``body`` passed the Content-Length: the declared bytes are
        the response (PEP 3333: a server sends no more), the connection ends after it (``cut``),
        and the caller stops the app."""
        if head is not None:
            data, self.framer = self.connection.open_response(self.request, head, close)
            self.status = head.status_code
            out.append(data)
        framer = self.framer
        whole = True
        if body and framer.kind is not NO_BODY:
            excess = framer.excess
            out.extend(framer.data(body))
            self.bytes_out += len(body) - (framer.excess - excess)
            if framer.excess and not excess:
                self.cut = True
                whole = False
        if end:
            out.append(framer.end())
            self.response_complete = True
            self.reusable = not self.cut
        return whole

    def _file_framing(self, length: int, out: List[Any]) -> bytes:
        """A file's ``length`` bytes go out next, unread (``_send_file``): what frames them goes
        before into ``out``; returned, what goes after them."""
        before, after = self.framer.around(length)
        if before:
            out.append(before)
        return after

    async def _send_file(self, file: Any, offset: int, length: int) -> int:
        """``length`` bytes of ``file`` from ``offset``, in slices; the bytes sent (fewer if the
        file ended early, and then the framing cannot be met). Raises as ``sendfile`` does."""
        sent = 0
        while sent < length:
            done = await self.connection.sendfile(file, offset + sent, min(SENDFILE_SLICE_BYTES, length - sent))
            if done == 0:
                break
            sent += done
        self.bytes_out += sent
        return sent


_NOT_STARTED = BodyFramer(NO_BODY, 0)  # (shared: a stand-in that frames nothing, never written with)
