"""The loop's half of a WSGI job's output: each Delivery its thread hands over, written. [loop]

A base class of ``wsgi.WSGICycle`` (so a request pays for no extra object). The thread side,
``wsgi.app.WSGICall``, sends a ``bridge.Delivery`` through the ``OutputChannel`` for each piece of
the response (the head with the first bytes, body bytes, a file region, the end); each arrives
here as one loop callback and goes out as one write:

* the head opens the response (``writer.ResponseWriter``: the connection's say on keep-alive);
* body bytes are framed; past the app's Content-Length they are cut there (PEP 3333), the app is
  told to stop, and the connection ends after the response;
* a file region comes with a Delivery, on a descriptor of the loop's own: a ``wsgi.file_wrapper``
  file, or a spool file the thread wrote the body into while its client was slow (``wsgi.spool``).
  The loop sends it (``writer._send_file``: by the kernel where it can, under ``--write-timeout``)
  and closes it. In the job's last Delivery, the job ends there (its thread and pool slot are
  free) and the response once the file is out; Deliveries that come while a file is being sent
  wait their turn (``after_file``: bounded, as the thread counts them in flight);
* a body that breaks its framing closes the connection: a cut response is never taken whole;
* a whole response the thread wrote itself on a lent socket (``bridge.SocketLoan``) comes as
  ``written``: only counted, and what the socket did not take written after it.

The job's last Delivery ends the job (``_job_ended``) and, once written, the response
(``_response_ended``). Output that comes for a request the loop has already answered (taken back
from the pool's queue, or answered 504 at its deadline) only frees its slot (``_free_slot``).
"""

from __future__ import annotations

import asyncio
import collections
import os
from typing import TYPE_CHECKING, Any, Deque, List, Optional

from ...http.response import LENGTH, NO_BODY, FramingError
from ...log import error_log
from ...wsgi.bridge import Delivery, FileSlice, OutputChannel
from .deadline import RequestDeadline
from .writer import ResponseWriter

if TYPE_CHECKING:
    from ..context import ServerContext


class DeliveryWriter(ResponseWriter):
    """Writes a WSGI job's Deliveries; the subclass says how a job ends."""

    __slots__ = ("after_file", "cancelled", "channel", "sendfile_task")

    channel: OutputChannel  # the thread's Deliveries come through it; closing it stops the app
    cancelled: bool  # answered by the loop while queued in the pool: its job only frees the slot
    sendfile_task: Optional[asyncio.Task[Any]]  # a file being sent for the thread
    after_file: Optional[Deque[Delivery]]  # Deliveries that came while it is sent, in order

    # The cycle's (declared here for the type checker; the slots are WSGICycle's).
    ctx: ServerContext
    deadline: Optional[RequestDeadline]

    # --- what the subclass does -----------------------------------------------------------------

    def _job_ended(self) -> None:
        """The job's last Delivery has come: its thread is free, and so is its pool slot."""
        raise NotImplementedError

    def _response_ended(self) -> None:
        """The response is written (or given up): count it, log it, on to the next request."""
        raise NotImplementedError

    def _free_slot(self) -> None:
        """The job of a request the loop already answered has ended: only its slot is left."""
        raise NotImplementedError

    def request_line(self) -> str:
        raise NotImplementedError

    # --- flow control, from the connection --------------------------------------------------

    def writes_blocked(self) -> None:
        self.channel.pause()  # the thread's next send waits

    def writes_unblocked(self) -> None:
        self.channel.resume()
        self._writes_unblocked()  # (a file being read out goes on)

    # --- deliveries, from the thread ----------------------------------------------------------

    def deliver(self, d: Delivery) -> None:
        """Write one Delivery from the thread. Runs as a loop callback."""
        if d.written is not None:
            self._written_by_thread(d)
            return
        if self.sendfile_task is not None:
            if self.after_file is None:
                self.after_file = collections.deque()
            self.after_file.append(d)
            return
        if self.cancelled or self._output_dropped():
            # The loop answered this request already (taken back from the pool's queue, or 504
            # at its deadline): what the app still sends is dropped; its last delivery (after its
            # close()) frees the slot.
            self._drop_file(d)
            if d.last:
                self._free_slot()
            return
        connection = self.connection
        if connection.closing:
            # We closed it (framing error, abort) or the client left: tell the thread to stop.
            self._drop_file(d)
            self.channel.close()
            if d.last:
                self._job_ended()
                self._response_ended()
            return
        try:
            out: List[Any] = []
            if d.abort:
                # Flush what was sent, then close: the unterminated body tells the client the
                # response is incomplete, and it is never mistaken for a whole one.
                self._pieces(out, d.head, b"", False)
                error_log.debug("abandoning response to %s", self.request_line())
                connection.writelines(out)
                connection.close()
            else:
                if not self._pieces(out, d.head, d.body, d.end and d.file is None):
                    self._cut_at_content_length()
                if d.file is not None:  # the loop sends the file now, then what follows it
                    if d.body:
                        self.channel.written(len(d.body))
                    if d.last:
                        self._job_ended()
                    self._start_sendfile(out, d.file, d.last)
                    return
                if out:
                    connection.writelines(out)
        except FramingError as exc:
            # The app broke HTTP framing (e.g. fewer bytes than its Content-Length): all we can
            # do with a half-sent response is close the connection.
            error_log.error("response to %s violates HTTP framing: %s; closing", self.request_line(), exc)
            self._drop_file(d)
            connection.close()
            self.channel.close()
        if d.last:
            self._job_ended()
            self._response_ended()
        elif d.body:
            self.channel.written(len(d.body))

    def _written_by_thread(self, d: Delivery) -> None:
        """The thread wrote the whole response itself on the socket the connection lent it
        (``bridge.SocketLoan``): count it, write what the socket did not take, and end the job
        and the response as if the loop had written it. (Whatever the loop did meanwhile, it
        recalled the loan first and, seeing it used, wrote no answer of its own.)"""
        response = d.written
        assert response is not None
        self.framer = response.framer
        self.status = response.status
        self.bytes_out = response.body_bytes
        self.response_complete = True
        self.reusable = True
        connection = self.connection
        connection.response_written(response.closes)
        if d.sent < response.size and not connection.closing:
            connection.writelines(_unsent(response.pieces, d.sent))
        self._job_ended()
        self._response_ended()

    def _output_dropped(self) -> bool:
        deadline = self.deadline
        return deadline is not None and deadline.timed_out and not self.response_started

    def _cut_at_content_length(self) -> None:
        """The app wrote past its Content-Length: what was declared is sent, the rest dropped.

        PEP 3333: a server sends no more than Content-Length bytes and stops iterating. The
        response is complete as framed; the connection then closes (``reusable`` is False), and
        the app is told to stop (its next write raises ``ClientDisconnected``, and its iterable's
        ``close()`` runs).
        """
        error_log.error(
            "response to %s: the app sent more than its Content-Length; sent the declared bytes, closing",
            self.request_line(),
        )
        self.channel.close()

    def _start_sendfile(self, out: List[Any], region: FileSlice, last: bool) -> None:
        """Send a file region the thread handed over (its descriptor is the loop's, closed when
        it is sent or given up); then end the response (``last``) or go on with what came after.
        A spooled body past the app's Content-Length is cut there, as its bytes would be."""
        framer = self.framer
        length = region.length
        if framer.kind is LENGTH and length > framer.remaining:
            length = framer.remaining  # (a wsgi.file_wrapper region is cut by the thread already)
            self.cut = True
            self._cut_at_content_length()
        if framer.kind is NO_BODY or length == 0:
            self._drop_region(region)
            self._region_done(region, out, last)
            return
        after = self._file_framing(length, out)
        self.connection.writelines(out)
        self.sendfile_task = self.ctx.loop.create_task(self._run_sendfile(region, length, after, last))

    async def _run_sendfile(self, region: FileSlice, length: int, after: bytes, last: bool) -> None:
        out: List[Any] = []
        try:
            sent = await self._send_file(region.file, region.offset, length)
            if sent < length:
                # The file shrank under us: the declared framing can't be met, so the connection ends.
                error_log.error("file for %s ended %d bytes early; closing", self.request_line(), length - sent)
                self.connection.close()
            elif after:
                out.append(after)
        except asyncio.CancelledError:
            pass  # the connection is lost: the response ends there
        except Exception as exc:
            error_log.debug("sendfile to %s failed: %r", self.request_line(), exc)
            self.connection.abort()
        finally:
            self.sendfile_task = None
            self._drop_region(region)
        self._region_done(region, out, last)

    def _region_done(self, region: FileSlice, out: List[Any], last: bool) -> None:
        """A file region is sent (or dropped): end the response, or write what came after it."""
        connection = self.connection
        if last:
            if not connection.closing:
                try:
                    self._pieces(out, None, b"", True)
                except FramingError as exc:
                    error_log.error("response to %s violates HTTP framing: %s; closing", self.request_line(), exc)
                    connection.close()
            if out and not connection.closing:
                connection.writelines(out)
            self._response_ended()
            return
        if out and not connection.closing:
            connection.writelines(out)
        self.channel.written(region.length)  # (a spool file, counted in flight by its thread)
        queued = self.after_file
        while queued and self.sendfile_task is None:
            self.deliver(queued.popleft())

    def _drop_file(self, delivery: Delivery) -> None:
        """A Delivery the loop will not write: its file region, if any, is closed."""
        if delivery.file is not None:
            self._drop_region(delivery.file)

    def _drop_region(self, region: FileSlice) -> None:
        """Close a region's descriptor (the loop's own); a spool file's bytes go back to the disk."""
        if region.spooled is not None:
            region.spooled.close()
        else:
            os.close(region.file)


def _unsent(pieces: List[Any], sent: int) -> List[Any]:
    """What is left of ``pieces`` once their first ``sent`` bytes are out."""
    out: List[Any] = []
    for piece in pieces:
        size = len(piece)
        if sent >= size:
            sent -= size
            continue
        out.append(memoryview(piece)[sent:] if sent else piece)
        sent = 0
    return out
