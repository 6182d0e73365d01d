"""A WSGI request's body on its way to the app: read whole first, or streamed. [loop]

Made only for a request with a body. Up to ``--request-buffer-bytes`` (within the server-wide
``--request-buffer-total-bytes``) the loop reads the body whole in memory before the app runs,
so no thread waits on the client's upload (``buffering``). A body past that bound (its
Content-Length says so, a chunked body grows past it, or the server-wide budget is spent) goes
on into a spool file (``wsgi.spool``), up to ``--request-spool-bytes``, still before the app runs;
the loop writes it, and ``wsgi.input`` reads it back. Past the spool's cap (or with no room on
disk), and for a body that expects ``100 Continue``, the body streams to the app through
``wsgi.input`` (``bridge.InputStream``), whose high-water mark stops the connection reading until
the app has read half of it.

The loop writes a spool file in the pieces the socket gives (up to 256 KiB each): a write to the
page cache, tens of microseconds each, as nginx's ``client_body_temp`` does in its event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ...wsgi.bridge import InputStream
from ...wsgi.spool import SpoolFile
from ..seam import PAUSE_BODY, Connection

if TYPE_CHECKING:
    from ..context import ServerContext

# ``buffer_bytes`` of a body that goes to a spool file from its first byte (its Content-Length
# is past --request-buffer-bytes, or the memory budget is spent).
TO_DISK = -1


def buffer_for(ctx: ServerContext, content_length: Optional[int], expects_continue: bool) -> int:
    """How much of a request's body to read in memory before the app runs: TO_DISK for none (it
    goes to a spool file from its first byte), 0 to stream it at once.

    Nothing is reserved yet: the body's bytes are counted against --request-buffer-total-bytes
    as they arrive (``RequestBody.feed``), so an upload that stalls or resets holds only what it
    sent. A body that expects 100 Continue streams: the app may refuse it unread, and the client
    sends nothing until the app's first read invites it (RFC 9110 §10.1.1). A chunked body is
    buffered up to --request-buffer-bytes, then spooled.
    """
    config = ctx.config
    limit = config.request_buffer_bytes
    if not limit or expects_continue:
        return 0
    size = limit if content_length is None else content_length
    budget = ctx.request_buffers
    if size > limit or budget.used >= budget.capacity:
        return TO_DISK if ctx.spool is not None and config.request_spool_bytes else 0
    return size


class RequestBody:
    """The body's bytes, the budget they hold, and the stream the app reads them from."""

    __slots__ = (
        "_connection",
        "_ctx",
        "_in_memory",
        "buffering",
        "received",
        "reserved",
        "spool",
        "spooling",
        "stream",
    )

    def __init__(self, ctx: ServerContext, connection: Connection, expects_continue: bool, buffer_bytes: int) -> None:
        self._ctx = ctx
        self._connection = connection
        # Read whole, in memory up to buffer_bytes (TO_DISK: none), and past that in a spool file,
        # before the app runs (0: it streams at once). What is read is counted in
        # ctx.request_buffers as it arrives (``reserved``), and given back when the request ends
        # (``release``); a spool file's bytes are the disk's (``SpoolDisk``).
        self.buffering = bool(buffer_bytes)
        self.spooling = False  # the body goes into ``spool`` as it comes
        self.spool: Optional[SpoolFile] = None  # the body's start, on disk; closed in ``release``
        self.reserved = 0
        self.received = 0
        self._in_memory = max(0, buffer_bytes) and ctx.config.request_buffer_bytes  # bytes it may hold
        self.stream = InputStream(
            ctx.mailbox,
            self._in_memory or ctx.config.input_buffer_bytes,
            on_resume=self._taken,
            on_first_read=connection.send_continue if expects_continue else None,
        )

    def feed(self, data: bytes) -> bool:
        """Body bytes from the connection; True when a body being read whole must now stream
        (a bound is reached: the app gets what is here, and the rest as it comes)."""
        self.received += len(data)
        if self.spooling:
            spool = self.spool
            assert spool is not None
            if spool.append(data):
                return False
            return self._stream_from_here(data)  # the spool's cap, or the disk's: the app's turn
        if self.buffering:
            if self.reserved + len(data) <= self._in_memory and self._ctx.request_buffers.reserve(len(data)):
                self.reserved += len(data)
                self.stream.feed(data)
                return False
            if self._spill(data):
                return False
            return self._stream_from_here(data)
        if self.stream.feed(data):
            self._connection.pause_reading(PAUSE_BODY)
        return False

    def _spill(self, data: bytes) -> bool:
        """The body is past what memory holds for it: what was read, and ``data``, go into a new
        spool file, and so does the rest as it comes. False when there is no spool (or no room
        on disk): nothing moved."""
        ctx = self._ctx
        disk = ctx.spool
        cap = ctx.config.request_spool_bytes
        if disk is None or not cap:
            return False
        spool = disk.new_file(cap, self.reserved + len(data))
        if spool is None:
            return False
        held = self.stream.take_buffered()
        for piece in [*held, data]:
            if not spool.append(piece):
                spool.close()
                for chunk in held:  # (back as they were: nothing else was fed meanwhile)
                    self.stream.feed(chunk)
                return False
        self._release_memory()
        self.spool = spool
        self.spooling = True
        return True

    def _stream_from_here(self, data: bytes) -> bool:
        """The body stops being read whole: the app runs now, reads what is spooled and held,
        then ``data`` and the rest as they come."""
        self._to_app()
        self.stream.limit_to(self._ctx.config.input_buffer_bytes)
        if self.stream.feed(data):
            self._connection.pause_reading(PAUSE_BODY)
        return True

    def end(self) -> bool:
        """The body is whole; True if it was being read whole (the app's turn now)."""
        was = self.buffering
        if was:
            self._to_app()
        self.stream.feed_eof()
        return was

    def _to_app(self) -> None:
        self.buffering = self.spooling = False
        if self.spool is not None:
            self.stream.read_file_first(self.spool)

    def release(self) -> None:
        """The request is over: the bytes it held go back to the server-wide budget, and its
        spool file to the disk's."""
        self._release_memory()
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def _release_memory(self) -> None:
        if self.reserved:
            self._ctx.request_buffers.release(self.reserved)
            self.reserved = 0

    def _taken(self) -> None:
        """[thread, via the loop] The app has read wsgi.input down to half its buffer."""
        self._connection.resume_reading(PAUSE_BODY)
