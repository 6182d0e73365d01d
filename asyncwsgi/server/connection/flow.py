"""Flow control of one connection's transport, both ways. [loop]

``HTTPProtocol`` is built on ``FlowControl``: this base holds what decides whether bytes move,
so the protocol itself reads as the connection's life.

* **Reading** is paused for independent reasons, kept as a bit set; it resumes when none is
  left. Waiting for a thread pauses lazily: most clients send nothing more until answered, and
  pausing and resuming a transport costs two system calls (and on the stdlib loop measurably
  more, in selector bookkeeping), so the transport is paused for that reason only when bytes
  arrive meanwhile (``pause_if_reading``).
* **Writing**: when the transport holds more than ``--output-buffer-bytes`` for the client
  (``pause_writing``), the connection first reserves up to ``--response-buffer-bytes`` from the
  server-wide budget, so a response that fits is taken off the app's thread whole; past that
  reservation, or at once when the budget is spent, the app's writes block until the client
  catches up. ``--write-timeout`` aborts a client that reads nothing for that long.

A base class rather than a member object: an idle connection then pays for these fields once,
in the protocol's ``__slots__``, and nothing for an extra object (about 2.4 KB per idle
connection is the budget ``benchmarks/idle.py`` holds).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from ...log import error_log
from ...wsgi.bridge import SocketLoan
from ..seam import PAUSE_POOL

if TYPE_CHECKING:
    from ..context import ServerContext

# Why reading is paused (a bit set: reading resumes when it is empty). The request cycle's own
# reasons are the seam's: PAUSE_BODY (the app holds this much unread) and PAUSE_POOL (waiting
# for a thread); the connection adds its own.
PAUSE_PIPELINE = 4  # a pipelined request is buffered behind the current one
PAUSE_REFUSED = 8  # we gave up on this request's body; nothing more is read

# ``_reset_fd`` when no reset watch is wanted, and when one is but the socket is still read.
_NO_WATCH, _WATCH_WHEN_UNREAD = -2, -1

# Writes of several pieces up to this size are joined into one transport write (one send).
# Larger ones go to uvloop's writelines uncopied (one writev), and are joined for the stdlib
# loop's transports, whose writelines in early 3.12 and 3.13 releases never pauses the protocol
# (CPython gh-127655, fixed in later patch releases): a slow reader's response would pile up
# unbounded, which tests/server/test_flow.py catches. As a write each, a streamed chunk's size
# line, data and CRLF would be three sends: about a quarter of a streamed download's throughput
# (1 MiB in 64 KiB yields, 16 connections, both loops).
_JOIN_PIECES_BYTES = 16 * 1024


# ``_lend_fd`` before the transport is looked at.
_NOT_LOOKED = -2


def _lendable_fd(transport: Any) -> int:
    """The descriptor of a transport's socket a thread may write to, or -1 (TLS, or none)."""
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


def _sends_vectors(transport: Any) -> bool:
    """Whether ``transport.writelines`` sends the pieces as they are, with flow control."""
    return type(transport).__module__ == "uvloop.loop"


class FlowControl(asyncio.Protocol):
    """Read pauses, the response buffer grant and the write deadline of one connection.

    Subclasses say what a pause means to the request in progress through the four hooks.
    """

    __slots__ = (
        "_lend_fd",
        "_loan",
        "_read_pauses",
        "_reset_fd",
        "_transport_paused",
        "_write_grant",
        "_write_timer",
        "client",
        "ctx",
        "transport",
        "write_paused",
    )

    def __init__(self, ctx: ServerContext, client: Optional[Tuple[str, str]]) -> None:
        self.ctx = ctx
        self.transport: Any = None
        self.client = client  # (ip, port) from accept(), or the PROXY header's; None on Unix sockets
        self.write_paused = False  # the app's writes block: the client is not keeping up
        self._write_grant = 0  # bytes reserved in ctx.response_buffers while the transport is full
        self._write_timer: Optional[asyncio.TimerHandle] = None
        self._read_pauses = 0
        self._transport_paused = False  # transport.pause_reading() is in effect
        self._reset_fd = _NO_WATCH  # the socket in ctx.gone while a waiting request is unread
        self._loan: Optional[SocketLoan] = None  # the socket, lent to the app's thread for one write
        self._lend_fd = _NOT_LOOKED  # its descriptor, or -1 where it is never lent (TLS)

    # --- hooks ---------------------------------------------------------------------------------

    @property
    def lost(self) -> bool:
        raise NotImplementedError

    @property
    def closing(self) -> bool:
        """Closed, closing or lost: nothing written now reaches the client."""
        raise NotImplementedError

    def _reading_stopped(self) -> None:
        """The first pause reason is set: time from now is not the client's to account for."""

    def _reading_restarted(self) -> None:
        """The last pause reason is gone."""

    def _app_writes_blocked(self) -> None:
        """The app's writes must now wait for the client."""

    def _app_writes_unblocked(self) -> None:
        """The client caught up: the app may write again."""

    def _client_reset(self) -> None:
        """The socket watched for a reset (``watch_for_reset``) has reset."""

    def _lent_socket_used(self) -> None:
        """A recalled loan was used: part of a response went out from the app's thread."""

    # --- reading -------------------------------------------------------------------------------

    @property
    def reading_paused(self) -> bool:
        """Paused for any reason but a buffered pipelined request: we are not asking for bytes."""
        return bool(self._read_pauses & ~PAUSE_PIPELINE)

    def pause_if_reading(self) -> None:
        """Bytes came while reading is (lazily) paused: now stop reading for real."""
        if self._read_pauses and not self._transport_paused:
            self._pause_transport()

    def pause_reading(self, reason: int) -> None:
        """Stop reading for ``reason`` (waiting for a thread only once bytes come: lazily)."""
        if not self._read_pauses:
            self._reading_stopped()
        self._read_pauses |= reason
        if reason != PAUSE_POOL:
            self._pause_transport()

    def _pause_transport(self) -> None:
        if not self._transport_paused and not self.lost and not self.transport.is_closing():
            self.transport.pause_reading()
            self._transport_paused = True
            if self._reset_fd == _WATCH_WHEN_UNREAD:
                self._watch_socket()

    def resume_reading(self, reasons: int) -> None:
        """Drop ``reasons``; read again when none is left."""
        if not self._read_pauses & reasons:
            return
        self._read_pauses &= ~reasons
        if not self._read_pauses:
            self._reading_restarted()
            if self._transport_paused:
                self._transport_paused = False
                if not self.lost and not self.transport.is_closing():
                    self.transport.resume_reading()

    def _read_everything(self) -> None:
        """Drop every pause reason (a refused connection discards what comes, LINGER)."""
        self._read_pauses = 0
        self._transport_paused = False
        self.transport.resume_reading()

    # --- a reset while the socket is not read ----------------------------------------------------

    def watch_for_reset(self, watch: bool) -> bool:
        """[seam] While a request waits for a thread, a reset on a socket we do not read would go
        unseen until its turn: ``ctx.gone`` watches it once reading stops. (While it is read, a
        reset reaches ``connection_lost`` like any other. Under load most requests wait and few
        are paused: this saves each of them a poll registration and a getsockopt, about 1 µs
        measured, and the 20 Hz poll while nothing is paused.) Stopping returns whether the
        kernel holds a reset for the socket (about 1 µs to ask)."""
        fd = self._reset_fd
        if watch:
            self._reset_fd = _WATCH_WHEN_UNREAD
            if self._transport_paused:
                self._watch_socket()
            return False
        self._reset_fd = _NO_WATCH
        if fd < 0:
            return False
        self.ctx.gone.remove(fd)
        sock = self.transport.get_extra_info("socket")
        try:
            return sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
        except OSError:
            return True

    def _watch_socket(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None and not self.lost:
            self._reset_fd = sock.fileno()
            self.ctx.gone.add(self._reset_fd, self)

    def client_gone(self) -> None:
        """[GoneWatch] The socket we watched has reset."""
        self._reset_fd = _NO_WATCH
        self._client_reset()

    # --- writing -------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        """The transport holds more than --output-buffer-bytes for the client. Rather than
        block the app's thread at once, hold up to --response-buffer-bytes for it if the
        server-wide budget has room: a response that fits is then taken off its thread whole."""
        ctx = self.ctx
        grant = ctx.config.response_buffer_bytes
        if grant > ctx.config.output_buffer_bytes and ctx.response_buffers.reserve(grant):
            self._write_grant = grant
        else:
            self._hold_writes()
        timeout = ctx.config.write_timeout
        if timeout and self._write_timer is None:
            self._write_timer = ctx.loop.call_later(timeout, self._on_write_stalled)

    def resume_writing(self) -> None:
        self._release_write_grant()
        self.write_paused = False
        self._cancel_write_timer()
        self._app_writes_unblocked()

    def write(self, data: Any) -> None:
        if self._loan is not None:
            self._recall_loan()
        self.transport.write(data)
        if self._write_grant:
            self._check_write_grant()

    def writelines(self, pieces: List[Any]) -> None:
        if self._loan is not None:
            self._recall_loan()
        if len(pieces) == 1:
            self.transport.write(pieces[0])
        elif sum(len(p) for p in pieces) <= _JOIN_PIECES_BYTES or not _sends_vectors(self.transport):
            self.transport.write(b"".join(pieces))
        else:
            self.transport.writelines(pieces)
        if self._write_grant:
            self._check_write_grant()

    async def sendfile(self, file: int, offset: int, count: int) -> int:
        """[seam] ``count`` bytes of the file descriptor ``file`` from ``offset``, sent by the
        kernel (``server/sendfile.py``); the bytes sent, fewer if the file ended. A client that
        takes nothing for --write-timeout is aborted (ConnectionAbortedError here), as when the
        app writes. NotImplementedError where the kernel cannot send to this connection (TLS)."""
        if self._loan is not None:
            self._recall_loan()
        sender = self.ctx.file_sender
        if not sender.usable(self.transport):
            raise NotImplementedError("no sendfile to this connection")
        config = self.ctx.config
        try:
            return await sender.send(self.transport, file, offset, count, config.write_timeout)
        except asyncio.TimeoutError:
            self.ctx.stats.timeouts["write"] += 1
            error_log.info(
                "client %s read nothing for %.1fs (--write-timeout); aborting", self._peer(), config.write_timeout
            )
            self.abort()
            raise ConnectionAbortedError("--write-timeout") from None

    def _hold_writes(self) -> None:
        """Block the app's writes until the client catches up (resume_writing)."""
        self.write_paused = True
        self._app_writes_blocked()

    def _check_write_grant(self) -> None:
        """Past the bytes held for a slow client: now the app's writes block."""
        if not self.write_paused and self.transport.get_write_buffer_size() > self._write_grant:
            self._hold_writes()

    def _release_write_grant(self) -> None:
        if self._write_grant:
            self.ctx.response_buffers.release(self._write_grant)
            self._write_grant = 0

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

    def abort(self) -> None:
        self._recall_loan()
        self.transport.abort()

    # --- the socket lent to the app's thread (bridge.SocketLoan) -----------------------------

    def _lend(self, server: Any, head_request: bool, http11: bool, close: bool) -> Optional[SocketLoan]:
        """Lend the socket for one write of a whole response, if nothing can come before it:
        nothing queued in the transport, the client keeping up, plain TCP or a Unix socket (a
        TLS transport holds the session's state: its bytes go through it)."""
        self._recall_loan()
        transport = self.transport
        if self.write_paused or self.closing or transport.get_write_buffer_size():
            return None
        fd = self._lend_fd
        if fd == _NOT_LOOKED:
            fd = self._lend_fd = _lendable_fd(transport)
        if fd < 0:
            return None
        try:
            loan = self._loan = SocketLoan(fd, server, head_request, http11, close)
        except OSError:  # out of descriptors: the loop writes it, as without a loan
            return None
        return loan

    def _recall_loan(self) -> None:
        """Take the socket back before the loop writes, half-closes or closes it."""
        loan = self._loan
        if loan is not None:
            self._loan = None
            if loan.recall():
                self._lent_socket_used()

    def _end_flow(self) -> None:
        """The transport is gone: no timer, no reservation, no watch, no loan is left behind."""
        self._recall_loan()
        self._cancel_write_timer()
        self._release_write_grant()
        if self._reset_fd >= 0:
            self.ctx.gone.remove(self._reset_fd)
        self._reset_fd = _NO_WATCH

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _peer(self) -> str:
        return self.client[0] if self.client else "unix"
