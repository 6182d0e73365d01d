"""The one place where the event loop thread and the pool's threads hand data to each other.
[both]

Two one-way pipes, each with flow control, and the messages that cross them:

* ``InputStream`` is ``wsgi.input``. The loop ``feed``s request body bytes in; the thread reads
  them out, blocking until they arrive. ``feed`` reports when the buffer is above its high-water
  mark so the loop stops reading the socket; the thread asks the loop to resume once it has
  drained the buffer to half of that.
* ``OutputChannel`` carries ``Delivery`` messages (response head, body bytes, end) from the
  thread to the loop through the server's ``Mailbox`` (one wake-up of the loop per batch). The
  thread blocks in ``send`` while the transport is paused or too many bytes are in flight, so a
  slow reader never makes the server buffer a whole response; once the client is gone ``send``
  fails fast with ClientDisconnected. With a spool (``spool.py``), a paused send writes the
  body on into a spool file instead of blocking, and the file crosses as one Delivery: at the
  job's end, or when the file is full (the thread then waits for the loop to have sent it).
* ``SocketLoan`` goes the other way: the connection's socket, lent to the thread for one write
  of a whole response when the loop would otherwise wake for that response alone.

Every method says which thread may call it. State shared between threads is touched only under
the object's lock; the loop never holds it for longer than a field update, and wakes a waiting
thread by releasing a lock of its own, not through a condition.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import threading
import time
from typing import Any, Callable, Coroutine, Deque, List, NamedTuple, Optional, Protocol, Set, Tuple

from ..errors import ClientDisconnected
from ..http.response import ResponseHead, WholeResponse, whole_response
from .spool import SpoolDisk, SpoolFile

# How often a blocked thread re-checks that the loop is still alive. Only matters when a
# loop is closed without closing its connections first; normal wake-ups are notifications.
_LIVENESS_CHECK_SECONDS = 1.0

# A readline() looks for its line end in the spooled start of a body this much at a time.
_LINE_READ_BYTES = 8192

# Callbacks one Mailbox batch runs before it lets the loop look at its timers and sockets:
# about 10 ms of deliveries.
_BATCH_CALLBACKS = 1024


class ToLoop(Protocol):
    """What the pipes below need of the loop: a ``Mailbox`` on a server, a loop in tests."""

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> Any: ...

    def is_closed(self) -> bool: ...


class Mailbox:
    """Callbacks from the pool's threads to one loop, with one wake-up of the loop per batch.

    On the stdlib loop, ``call_soon_threadsafe`` writes to the loop's self-pipe on every call
    (1.9 µs measured, plus the loop's read of it); uvloop's eventfd wake-up already coalesces.
    Under load the loop is busy when most responses arrive, so a callback posted while a batch
    is already due rides with it, without a wake-up of its own: about 6% of hello world's
    throughput at 50 connections on the stdlib loop (none on uvloop). Callbacks run in
    the order they were posted; one that raises is reported to the loop's exception handler,
    as the loop would, and the batch goes on.

    It stands in for the loop where the channels below take one (``call_soon_threadsafe`` and
    ``is_closed``). Relies on the GIL's ordering: a thread appends before it reads the flag and
    the loop clears the flag before it empties the queue, so no callback is left behind.
    """

    __slots__ = ("_due", "_loop", "_queue")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: Deque[Tuple[Callable[..., object], Tuple[Any, ...]]] = collections.deque()
        self._due = False  # a batch is scheduled on the loop and has not started

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:  # [thread]
        """Run ``callback(*args)`` on the loop; RuntimeError if the loop is closed."""
        self._queue.append((callback, args))
        if not self._due:
            self._due = True
            try:
                self._loop.call_soon_threadsafe(self._run)
            except RuntimeError:
                self._due = False
                raise

    def is_closed(self) -> bool:  # [any]
        return self._loop.is_closed()

    def _run(self) -> None:  # [loop]
        self._due = False
        queue = self._queue
        # At most _BATCH_CALLBACKS, then the rest in a batch of its own: threads that post as
        # fast as the loop runs (a streamed response read as fast as it comes) held the loop in
        # one batch for good when it drained until empty, and no timer fired, no socket was
        # polled (seen on the stdlib loop). Only what was queued at the start was 8% slower on
        # hello world at 50 connections (stdlib loop): callbacks posted during a batch ride
        # with it, instead of costing a loop iteration of their own.
        budget = _BATCH_CALLBACKS
        while queue and budget:
            budget -= 1
            callback, args = queue.popleft()
            try:
                callback(*args)
            except Exception as exc:
                self._loop.call_exception_handler({"message": f"Exception in callback {callback!r}", "exception": exc})
        if queue and not self._due:
            self._due = True  # what is left goes next, after the loop's timers and sockets
            self._loop.call_soon(self._run)


class FileSlice(NamedTuple):
    """A region of a regular file the loop sends (``wsgi.file_wrapper``, or a spool file):
    ``file`` is a descriptor of the loop's own, which it closes when done."""

    file: int
    offset: int
    length: int
    spooled: Optional[SpoolFile] = None  # a spool file's region: the loop closes it with ``close()``


class Delivery(NamedTuple):
    """One thread-to-loop message. Small responses travel as exactly one of these."""

    head: Optional[ResponseHead]  # send the status line and headers first
    body: Any  # bytes-like, possibly empty
    end: bool  # the response is complete
    last: bool  # the job is finished: nothing more will come, release its thread slot
    abort: bool = False  # close the connection without completing the response
    file: Optional[FileSlice] = None  # the loop sends this region of a file (after ``body``)
    # The thread wrote the response itself (``SocketLoan``): the first ``sent`` bytes of it
    # are out; the loop writes the rest and counts it.
    written: Optional[WholeResponse] = None
    sent: int = 0


class ServerHeaders(Protocol):
    """What a lent socket's response asks of the server (``server.context.ServerContext``)."""

    draining: bool

    def header_lines(self) -> Tuple[bytes, ...]: ...


class SocketLoan:
    """The connection's socket, lent to the app's thread for one write of a whole response.

    Without it, a response crosses to the loop (``OutputChannel.finish``), which must wake to
    write it: at one connection that wake-up was a third of a hello-world request's context
    switches. With it, a small response complete in hand goes out from the thread in one
    non-blocking ``writev``, and the loop, woken as before, only counts it and writes what the
    socket did not take. The loop lends the socket only while nothing is queued for it in the
    transport (``HTTPProtocol.lend_socket``); it recalls the loan before it writes, half-closes
    or closes anything itself, so bytes never go out of order or after the connection's end.

    The thread writes on a descriptor of its own (``dup``): the transport may close its own
    at any moment (a reset seen on the loop), and that number may at once be another client's.
    Whoever ends the loan, the thread's write or the loop's recall, closes it, under the lock;
    the loop waits at most one non-blocking write for it.
    """

    __slots__ = ("_fd", "_lock", "answered", "close", "head_request", "http11", "server", "used")

    def __init__(self, fd: int, server: ServerHeaders, head_request: bool, http11: bool, close: bool) -> None:
        self._fd = os.dup(fd)  # [loop]
        self._lock = threading.Lock()
        self.server = server
        self.head_request = head_request
        self.http11 = http11
        self.close = close  # the connection's reasons to close after it, when it was lent
        self.used = False  # some of a response went out from the thread
        # All of it did, before the client was seen to leave: one seen leaving now left after
        # its answer (the loop hears of both in whichever order they come).
        self.answered = False

    def write(self, delivery: Delivery, gone: bool) -> Delivery:  # [thread]
        """Write the whole response ``delivery`` carries (``gone``: the client has been seen to
        leave); return the Delivery the loop gets instead: ``written`` if any of it went out,
        else ``delivery`` as it was."""
        if self._fd < 0:
            return delivery  # recalled (a plain read: the lock decides below)
        head = delivery.head
        assert head is not None
        server = self.server
        response = whole_response(
            head,
            delivery.body,
            head_request=self.head_request,
            http11=self.http11,
            close=self.close or server.draining,
            extra=server.header_lines(),
        )
        if response is None:
            return delivery
        with self._lock:
            fd = self._fd
            if fd < 0:
                return delivery
            self._fd = -1
            try:
                sent = os.writev(fd, response.pieces)
            except OSError:  # the socket is full (EAGAIN) or the client gone: the loop sees to it
                sent = 0
            finally:
                os.close(fd)
            self.used = sent > 0
            self.answered = sent == response.size and not gone
        if not sent:
            return delivery
        return delivery._replace(written=response, sent=sent)

    def recall(self) -> bool:  # [loop]
        """End the loan before the loop writes or closes; True if part of a response went out."""
        with self._lock:
            fd = self._fd
            if fd >= 0:
                self._fd = -1
                os.close(fd)
            return self.used


class OutputChannel:
    """Thread-to-loop pipe for one response, with write back-pressure."""

    __slots__ = (
        "_closed",
        "_cond",
        "_coroutines",
        "_disk",
        "_gone",
        "_inflight",
        "_limit",
        "_lock",
        "_loop",
        "_paused",
        "_sink",
        "_spool",
        "_spool_cap",
        "_waiting",
        "_wake",
        "loan",
    )

    def __init__(
        self,
        loop: ToLoop,
        sink: Callable[[Delivery], None],
        limit: int,
        paused: bool,
        spool: Optional[SpoolDisk] = None,
        spool_cap: int = 0,
    ) -> None:
        self._loop = loop
        self._sink = sink  # [loop] runs each delivery
        self._limit = limit
        # Where a body the client is not keeping up with goes instead of blocking the thread,
        # up to spool_cap bytes a file (None: no spooling); the file being written, thread-side.
        self._disk = spool if spool_cap else None
        self._spool_cap = spool_cap
        self._spool: Optional[SpoolFile] = None
        self._lock = threading.Lock()
        # Made on first use: most responses cross in one finish() and never wait or notify.
        # The app's thread waits on _wake, a lock held while it has no reason to wake: the loop
        # wakes it with one release, where Condition.notify was about 10% of the loop's time
        # on a streamed download (py-spy), once per chunk: about 4% of its throughput (1 MiB in
        # 64 KiB yields, 16 connections, both loops). _cond is for wait_gone's waiters, which may
        # be any threads of the app.
        self._wake: Optional[threading.Lock] = None
        self._cond: Optional[threading.Condition] = None
        self._inflight = 0  # bytes handed to the loop and not yet written to the transport
        self._paused = paused  # the transport is above its write high-water mark
        self._closed = False  # the connection is gone: sends fail
        self._gone = False  # the client has left (closed or half-closed): asyncwsgi.disconnected
        self._waiting = False  # the thread is blocked in send()
        # Futures of coroutines the app runs on the loop (asyncwsgi.run_coroutine), cancelled
        # when the connection goes; made on first use.
        self._coroutines: Optional[Set[concurrent.futures.Future[Any]]] = None
        # [loop sets before the job runs] the socket, for a whole response in hand (SocketLoan)
        self.loan: Optional[SocketLoan] = None

    # --- [thread] ---------------------------------------------------------------------------

    def send(self, delivery: Delivery, nbytes: int) -> None:
        """Hand ``delivery`` to the loop, first blocking while the client is not keeping up;
        or, with a spool, write its body on into a spool file instead of blocking."""
        if self._spool is not None and self._spool_more(delivery.body):
            return
        # A delivery with the head goes as it is: a spool holds body bytes only.
        may_spool = self._disk is not None and delivery.head is None
        while True:
            with self._lock:
                while not self._closed and (self._paused or self._inflight > self._limit):
                    if may_spool and self._paused and self._inflight <= self._limit:
                        break  # (a spool file sent on its own is in flight until it is out)
                    self._wait()
                if self._closed:
                    raise ClientDisconnected("client disconnected")
                if not (may_spool and self._paused):
                    self._inflight += nbytes
                    break
            if self._start_spool(delivery.body):
                return
            may_spool = False  # no room on disk: wait for the client, as without a spool
        self._hand_off(delivery)

    def _start_spool(self, body: Any) -> bool:
        """The client is not keeping up: the body goes on into a new spool file, if the disk
        has room for it."""
        assert self._disk is not None
        spool = self._disk.new_file(self._spool_cap, len(body))
        if spool is None:
            return False
        if not spool.append(body):
            spool.close()
            return False
        self._spool = spool
        return True

    def _spool_more(self, body: Any) -> bool:
        """A spool file is open: everything goes on into it, in order. When it is full, it
        crosses to the loop, and False: the thread then waits as usual (its bytes count in
        flight until the loop has sent them)."""
        spool = self._spool
        assert spool is not None
        if self._closed:
            self._spool = None
            spool.close()
            raise ClientDisconnected("client disconnected")
        if spool.append(body):
            return True
        self._send_spool(last=None)
        return False

    def _send_spool(self, last: Optional[Delivery]) -> None:
        """Hand the spool file to the loop, which sends it and then closes it: as part of the
        job's ``last`` delivery, or (None) on its own, counted in flight until it is sent."""
        spool = self._spool
        assert spool is not None
        self._spool = None
        size = spool.size
        region = FileSlice(spool.fd, 0, size, spooled=spool)
        if last is not None:
            self.finish(last._replace(body=b"", file=region))
            return
        with self._lock:
            self._inflight += size
        try:
            self._loop.call_soon_threadsafe(self._sink, Delivery(None, b"", False, False, file=region))
        except RuntimeError:
            with self._lock:
                self._closed = True
            spool.close()
            raise ClientDisconnected("server loop closed") from None

    def _wait(self) -> None:
        """[thread, holding the lock; returns holding it] Sleep until the loop wakes us, or
        for the liveness check. A wake-up may be stale: callers look at the state again."""
        wake = self._wake
        if wake is None:
            wake = self._wake = threading.Lock()
            wake.acquire()
        self._waiting = True
        self._lock.release()
        try:
            wake.acquire(timeout=_LIVENESS_CHECK_SECONDS)
        finally:
            self._lock.acquire()
        self._waiting = False
        if self._loop.is_closed():
            self._closed = True

    def finish(self, delivery: Delivery) -> None:
        """Send the job's last delivery: never blocks, never raises, always arrives if the loop runs.
        A spool file open still ends the body (the delivery's own bytes go into it first)."""
        spool = self._spool
        if spool is not None:
            if delivery.abort or self._closed:
                self._spool = None
                spool.close()  # the response is cut short either way
            elif not delivery.body or spool.append(delivery.body):
                self._send_spool(last=delivery)
                return
            else:
                try:
                    self._send_spool(last=None)  # full: it goes first, the delivery after it
                except ClientDisconnected:
                    pass
        elif self.loan is not None and delivery.head is not None and delivery.end and delivery.file is None:
            delivery = self.loan.write(delivery, self._gone)  # the whole response, from here
        try:
            self._loop.call_soon_threadsafe(self._sink, delivery)
        except RuntimeError:  # the loop is closed; nothing is left to tell
            pass

    def _hand_off(self, delivery: Delivery) -> None:
        try:
            self._loop.call_soon_threadsafe(self._sink, delivery)
        except RuntimeError:
            with self._lock:
                self._closed = True
            raise ClientDisconnected("server loop closed") from None

    def _condition(self) -> threading.Condition:  # [either thread; never while holding the lock]
        cond = self._cond
        if cond is None:
            with self._lock:
                cond = self._cond
                if cond is None:
                    cond = self._cond = threading.Condition(self._lock)
        return cond

    @property
    def gone(self) -> bool:
        """The client has left (closed or half-closed its side)."""
        return self._gone

    @property
    def closed(self) -> bool:
        """The client is gone (a plain read: a stale False only delays noticing by one send)."""
        return self._closed

    def wait_gone(self, timeout: Optional[float]) -> bool:
        """Block until the client has left, or ``timeout`` seconds; True if it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        cond = self._condition()
        with cond:
            while not self._gone:
                remaining = _LIVENESS_CHECK_SECONDS if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    break
                cond.wait(min(remaining, _LIVENESS_CHECK_SECONDS))
                if self._loop.is_closed():
                    self._gone = True
            return self._gone

    # --- [loop] -----------------------------------------------------------------------------

    def detach(self) -> None:
        """The job is over: forget the sink, which refers back to the exchange."""
        self._sink = _ignore

    # A waiter makes the condition before it waits, so one that doesn't exist has no waiters:
    # these update under the bare lock and notify only an existing condition.

    def written(self, nbytes: int) -> None:
        """The loop has passed ``nbytes`` of a delivery to the transport."""
        if nbytes == 0:
            return
        with self._lock:
            self._inflight -= nbytes
            if self._waiting and not self._paused and self._inflight <= self._limit:
                self._notify(all_=False)

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self._waiting:
                self._notify(all_=False)

    def close(self) -> None:
        """The connection is gone: wake the thread so its next send fails fast, and cancel the
        coroutines it runs on the loop."""
        with self._lock:
            self._closed = self._gone = True
            self._notify(all_=True)
            running, self._coroutines = self._coroutines, None
        for future in running or ():
            future.cancel()

    def track(self, future: concurrent.futures.Future[Any]) -> bool:  # [thread]
        """Cancel ``future`` when the connection goes; False (and cancelled) if it is gone already."""
        with self._lock:
            if not self._gone:
                if self._coroutines is None:
                    self._coroutines = set()
                self._coroutines.add(future)
                return True
        future.cancel()
        return False

    def untrack(self, future: concurrent.futures.Future[Any]) -> None:  # [thread]
        with self._lock:
            if self._coroutines is not None:
                self._coroutines.discard(future)

    def mark_gone(self) -> None:
        """The client closed its side: tell the app (and cancel the coroutines it runs for this
        client, as asyncwsgi.disconnected is set), but still deliver what it sends."""
        with self._lock:
            self._gone = True
            self._notify(all_=True)
            running, self._coroutines = self._coroutines, None
        for future in running or ():
            future.cancel()

    def _notify(self, all_: bool) -> None:
        """Wake the app's thread if it waits in send(), and with ``all_`` every
        wait_gone() too; the caller holds the lock."""
        if self._waiting:
            self._waiting = False
            wake = self._wake
            # Only this method releases it, under the lock, and only the waiting thread takes
            # it: if it is held now, no release is pending, and one is due.
            if wake is not None and wake.locked():
                wake.release()
        if all_:
            cond = self._cond
            if cond is not None:
                cond.notify_all()


def _ignore(delivery: Delivery) -> None:
    """The sink of a detached channel; nothing reaches it, as the job has finished."""


def _nothing() -> None:
    """The resume callback of a detached input stream; never called, as the job has finished."""


class DisconnectEvent:
    """``environ["asyncwsgi.disconnected"]``: set once the client has gone away.

    It has ``threading.Event``'s reading half (``is_set()``, ``wait(timeout)``), so a long-poll
    or server-sent-events app can stop early; only the server sets it.
    """

    __slots__ = ("_channel",)

    def __init__(self, channel: OutputChannel) -> None:
        self._channel = channel

    def is_set(self) -> bool:
        return self._channel._gone

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._channel.wait_gone(timeout)


class RunCoroutine:
    """``environ["asyncwsgi.run_coroutine"](coro, timeout=None)``: run a coroutine on the
    server's event loop from the app's thread and return its result (or raise its exception).

    So a WSGI view can use the asyncio services that live beside the server (publish to a
    mounted ASGI app's WebSocket clients, await an asyncio client library). The coroutine is
    cancelled, and ``ClientDisconnected`` raised, if the client goes meanwhile; past
    ``timeout`` seconds, or past the request's ``--request-timeout``, it is cancelled and
    ``TimeoutError`` raised. Called on the loop's own thread it would deadlock: RuntimeError.
    "Goes" is what sets ``asyncwsgi.disconnected``: the connection closes, or the client shuts
    its sending side.
    """

    __slots__ = ("_channel", "_deadline", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, channel: OutputChannel, deadline: Optional[float]) -> None:
        self._loop = loop
        self._channel = channel
        self._deadline = deadline  # time.monotonic() of --request-timeout, if set

    def __call__(self, coro: Coroutine[Any, Any, Any], timeout: Optional[float] = None) -> Any:  # [thread]
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError("asyncwsgi.run_coroutine called on the event loop's thread: await the coroutine")
        wait = timeout
        if self._deadline is not None:
            left = max(0.0, self._deadline - time.monotonic())
            wait = left if wait is None else min(wait, left)
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        if not self._channel.track(future):
            raise ClientDisconnected("client disconnected")
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"coroutine did not finish within {wait:g}s") from None
        except concurrent.futures.CancelledError:
            if self._channel._gone:
                raise ClientDisconnected("client disconnected while the coroutine ran") from None
            raise
        finally:
            self._channel.untrack(future)


class InputStream:
    """``wsgi.input``: a blocking file-like reader of the request body, fed by the loop."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_cond",
        "_eof",
        "_error",
        "_file",
        "_file_at",
        "_high_water",
        "_loop",
        "_loop_paused",
        "_low_water",
        "_offset",
        "_on_first_read",
        "_on_resume",
    )

    def __init__(
        self,
        loop: ToLoop,
        high_water: int,
        on_resume: Callable[[], None],
        on_first_read: Optional[Callable[[], None]] = None,
    ) -> None:
        self._loop = loop
        self._high_water = high_water
        self._low_water = high_water // 2
        self._on_resume = on_resume  # [loop] resume reading the socket
        self._on_first_read = on_first_read  # [loop] e.g. send 100 Continue
        self._cond = threading.Condition(threading.Lock())
        # Body chunks as h11 handed them over (each a fresh object we own), read in place: a
        # byte is copied once on its way to the app, when a read joins what it takes.
        self._chunks: Deque[Any] = collections.deque()
        self._offset = 0  # bytes of _chunks[0] already read
        self._buffered = 0  # unread bytes in _chunks
        self._eof = False
        self._error: Optional[BaseException] = None
        self._loop_paused = False  # the loop stopped reading because we were full
        # The body's first bytes, spooled to disk before the app ran (read before _chunks), and
        # where the app's reads are in it; None once read to its end (the loop closes it).
        self._file: Optional[SpoolFile] = None
        self._file_at = 0

    # --- [loop] -----------------------------------------------------------------------------

    def read_file_first(self, spool: SpoolFile) -> None:
        """Before the app runs: the body starts with what ``spool`` holds; what is fed after
        it, if anything, follows."""
        if spool.size:
            self._file = spool
            self._file_at = 0

    def take_buffered(self) -> List[Any]:
        """Before the app runs: take back the bytes fed so far (they go to a spool file)."""
        with self._cond:
            chunks = list(self._chunks)
            if chunks and self._offset:
                chunks[0] = memoryview(chunks[0])[self._offset :]
            self._chunks.clear()
            self._offset = self._buffered = 0
            self._loop_paused = False
        return chunks

    def feed(self, data: bytes) -> bool:
        """Append body bytes; True means the buffer is full and the loop should stop reading."""
        with self._cond:
            if data:
                self._chunks.append(data)
                self._buffered += len(data)
            full = self._buffered > self._high_water
            if full:
                self._loop_paused = True
            self._cond.notify()
        return full

    def feed_eof(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify()

    def limit_to(self, high_water: int) -> None:
        """Lower the buffer's bound: a body that was being read whole now streams."""
        with self._cond:
            self._high_water = high_water
            self._low_water = high_water // 2

    def detach(self) -> None:
        """The job is over: forget the callbacks, which refer back to the request's cycle, and
        the spool file (the loop closes it)."""
        self._on_first_read = None
        self._on_resume = _nothing
        self._file = None

    def fail(self, exc: BaseException) -> None:
        """Make the thread's current and later reads raise ``exc`` (client gone, bad framing)."""
        with self._cond:
            if not self._eof and self._error is None:
                self._error = exc
            self._cond.notify()

    # --- [thread] ---------------------------------------------------------------------------

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0:
            return self._read_until(-1, newline=False)
        if size == 0:
            self._note_first_read()
            return b""
        return self._read_until(size, newline=False)

    def readline(self, size: Optional[int] = -1) -> bytes:
        if size is None:
            size = -1
        if size == 0:
            return b""
        return self._read_until(size, newline=True)

    def readlines(self, hint: int = -1) -> List[bytes]:
        lines = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> InputStream:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Apps may close ``wsgi.input``; the server owns its lifetime, so this does nothing."""

    def _note_first_read(self) -> None:
        callback = self._on_first_read
        if callback is not None:
            self._on_first_read = None
            self._call_loop(callback)

    def _read_until(self, size: int, newline: bool) -> bytes:
        """Read up to ``size`` bytes (all if negative), stopping after b"\\n" when ``newline``.

        Bytes are taken out of the shared buffer as they arrive, so a read larger than the
        high-water mark (or a long line) never deadlocks against the paused socket.
        """
        self._note_first_read()
        first = b""
        if self._file is not None:
            first, done = self._read_file(size, newline)
            if done:
                return first
            if size >= 0:
                size -= len(first)
        pieces: List[Any] = [first] if first else []
        got = 0
        cond = self._cond
        while True:
            resume = False
            with cond:
                while not self._chunks and not self._eof and self._error is None:
                    cond.wait(_LIVENESS_CHECK_SECONDS)
                    if self._loop.is_closed():
                        self._error = ClientDisconnected("server loop closed")
                if self._error is not None:
                    raise self._error
                chunks = self._chunks
                found = False
                before = got
                while chunks and (size < 0 or got < size) and not found:
                    chunk = chunks[0]
                    start = self._offset
                    end = len(chunk) if size < 0 else min(len(chunk), start + size - got)
                    if newline:
                        if type(chunk) is not bytes:  # a body that came with its head (a view)
                            chunk = chunks[0] = bytes(chunk)
                        index = chunk.find(b"\n", start, end)
                        if index >= 0:
                            end = index + 1
                            found = True
                    if start == 0 and end == len(chunk):
                        pieces.append(chunk)
                        chunks.popleft()
                        self._offset = 0
                    else:
                        pieces.append(memoryview(chunk)[start:end])
                        if end == len(chunk):
                            chunks.popleft()
                            self._offset = 0
                        else:
                            self._offset = end
                    got += end - start
                self._buffered -= got - before
                done = found or (size >= 0 and got >= size) or (self._eof and not chunks)
                if self._loop_paused and self._buffered <= self._low_water:
                    self._loop_paused = False
                    resume = True
            if resume:
                self._call_loop(self._on_resume)
            if done:
                if len(pieces) == 1 and type(pieces[0]) is bytes:
                    return pieces[0]  # a whole chunk: no copy at all
                return b"".join(pieces)

    def _read_file(self, size: int, newline: bool) -> Tuple[bytes, bool]:
        """What a read takes from the spooled start of the body: the bytes, and whether the
        read is done (its size reached, or its line ended) before the spooled bytes are."""
        spool = self._file
        assert spool is not None
        at, end = self._file_at, spool.size
        pieces: List[bytes] = []
        got = 0
        done = False
        while at < end and not done:
            want = end - at if size < 0 else min(end - at, size - got)
            if newline:
                want = min(want, _LINE_READ_BYTES)
            data = spool.read(want, at)
            if not data:
                raise ClientDisconnected("request body spool file closed")  # the request is over
            if newline:
                index = data.find(b"\n")
                if index >= 0:
                    data = data[: index + 1]
                    done = True
            pieces.append(data)
            at += len(data)
            got += len(data)
            done = done or (size >= 0 and got >= size)
        self._file_at = at
        if at >= end:
            self._file = None
        return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), done

    def _call_loop(self, callback: Callable[[], None]) -> None:
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:
            raise ClientDisconnected("server loop closed") from None


class EmptyInput:
    """``wsgi.input`` for requests without a body: shared, stateless, never blocks.

    It has InputStream's loop-side methods too, as no-ops, so the loop treats every request's
    body alike: there is nothing to fail or finish when there is no body.
    """

    __slots__ = ()

    def feed(self, data: bytes) -> bool:  # [loop] h11 never yields body data for these requests
        raise AssertionError("body data for a request without a body")

    def feed_eof(self) -> None:  # [loop]
        pass

    def fail(self, exc: BaseException) -> None:  # [loop]
        pass

    def detach(self) -> None:  # [loop]
        pass

    def read(self, size: Optional[int] = -1) -> bytes:
        return b""

    def readline(self, size: Optional[int] = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> List[bytes]:
        return []

    def __iter__(self) -> EmptyInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


EMPTY_INPUT = EmptyInput()
