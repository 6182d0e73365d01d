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

import asyncio
import os
from typing import Any, List, Optional

import h11

from ...http.response import NO_BODY, BodyFramer, ResponseHead
from ..seam import Connection

# A file sent where the kernel cannot (TLS) is read this much at a time, on the loop.
READ_BYTES = 64 * 1024


class ResponseWriter:
    """The response half of a cycle: framing state, and the bytes it counts for the access log."""

    __slots__ = (
        "_unblocked",
        "bytes_out",
        "connection",
        "cut",
        "framer",
        "request",
        "response_complete",
        "reusable",
        "status",
    )

    def __init__(self, connection: Connection, request: h11.Request) -> None:
        self.connection = connection
        self.request = request
        self.framer: BodyFramer = _NOT_STARTED  # the head's framing, once the head is written
        self.status = 0
        self.bytes_out = 0  # body bytes sent, as the access log counts them
        self.response_complete = False  # the whole response is handed to the connection
        self.cut = False  # the body passed its Content-Length: it was cut there, the connection ends
        self.reusable = False  # complete as framed, and not cut: the connection may go on
        self._unblocked: Optional[asyncio.Future[None]] = None  # a file read waits for the client

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

    async def _send_file(self, file: int, offset: int, length: int) -> int:
        """``length`` bytes of the file descriptor ``file`` from ``offset``: by the kernel where
        the connection allows (``Connection.sendfile``), else in bounded reads written as its flow
        control allows (over TLS); the bytes sent (fewer if the file ended early, and then the
        framing cannot be met). Raises as the connection does when the client goes."""
        try:
            sent = await self.connection.sendfile(file, offset, length)
        except NotImplementedError:
            sent = await self._send_by_reading(file, offset, length)
        self.bytes_out += sent
        return sent

    async def _send_by_reading(self, file: int, offset: int, length: int) -> int:
        """The file read in pieces on the loop (from the page cache, most often) and written
        through the transport, never more than the connection holds for a slow client."""
        connection = self.connection
        sent = 0
        while sent < length and not connection.closing:
            while connection.write_paused and not connection.closing:
                await self._until_unblocked()
            data = os.pread(file, min(READ_BYTES, length - sent), offset + sent)
            if not data:
                break
            connection.write(data)
            sent += len(data)
        return sent

    async def _until_unblocked(self) -> None:
        waiter = self._unblocked
        if waiter is None:
            waiter = self._unblocked = asyncio.get_running_loop().create_future()
        await waiter

    def _writes_unblocked(self) -> None:
        """The client reads again (the cycle's ``writes_unblocked``): a file read goes on."""
        waiter, self._unblocked = self._unblocked, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


_NOT_STARTED = BodyFramer(NO_BODY, 0)  # (shared: a stand-in that frames nothing, never written with)
