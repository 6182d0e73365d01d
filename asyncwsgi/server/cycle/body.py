"""A WSGI request's body on its way to the app: read whole first, or streamed. [loop]

Made only for a request with a body. Up to ``--request-buffer-bytes`` (within the server-wide
``--request-buffer-total-bytes``) the loop reads the body whole before the app runs, so no thread
waits on the client's upload (``buffering``). Past either bound, for a chunked body past the
buffer, or for a body that expects ``100 Continue``, it streams to the app through ``wsgi.input``
(``bridge.InputStream``), whose high-water mark stops the connection reading until the app has
read half of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...wsgi.bridge import InputStream
from ..seam import PAUSE_BODY, Connection

if TYPE_CHECKING:
    from ..context import ServerContext


class RequestBody:
    """The body's bytes, the budget they hold, and the stream the app reads them from."""

    __slots__ = ("_connection", "_ctx", "buffering", "received", "reserved", "stream")

    def __init__(self, ctx: ServerContext, connection: Connection, expects_continue: bool, buffer_bytes: int) -> None:
        self._ctx = ctx
        self._connection = connection
        # Read whole, up to this size, before the app runs (0: it streams at once); the stream's
        # high-water mark is then this size. What is read is counted in ctx.request_buffers as it
        # arrives (``reserved``), and given back when the request ends (``release``).
        self.buffering = bool(buffer_bytes)
        self.reserved = 0
        self.received = 0
        self.stream = InputStream(
            ctx.mailbox,
            ctx.config.request_buffer_bytes if buffer_bytes else ctx.config.input_buffer_bytes,
            on_resume=self._taken,
            on_first_read=connection.send_continue if expects_continue else None,
        )

    def feed(self, data: bytes) -> bool:
        """Body bytes from the connection; True when a body being read whole must now stream
        (a bound is reached: the app gets what is here, and the rest as it comes)."""
        self.received += len(data)
        overflow = False
        if self.buffering:
            if self._ctx.request_buffers.reserve(len(data)):
                self.reserved += len(data)
            else:
                # The server-wide budget is spent: the rest streams with the ordinary bound.
                overflow = True
                self.stream.limit_to(self._ctx.config.input_buffer_bytes)
        if self.stream.feed(data):
            self._connection.pause_reading(PAUSE_BODY)
            overflow = True  # (a chunked body past the buffer, or the bound above)
        if overflow and self.buffering:
            self.buffering = False
            return True
        return False

    def end(self) -> bool:
        """The body is whole; True if it was being read whole (the app's turn now)."""
        self.stream.feed_eof()
        was, self.buffering = self.buffering, False
        return was

    def release(self) -> None:
        """The request is over: the bytes it held go back to the server-wide budget."""
        if self.reserved:
            self._ctx.request_buffers.release(self.reserved)
            self.reserved = 0

    def _taken(self) -> None:
        """[thread, via the loop] The app has read wsgi.input down to half its buffer."""
        self._connection.resume_reading(PAUSE_BODY)
