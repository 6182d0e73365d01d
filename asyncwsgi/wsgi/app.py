"""The WSGI side of one request: call the app, validate what it says, stream what it yields. [thread]

Everything in this module runs on one of the pool's threads. It never touches the socket or the h11
connection; it only produces ``Delivery`` messages for ``bridge.OutputChannel`` (which may write
a whole response on a socket the loop lent it, ``bridge.SocketLoan``). Rules kept
here, from PEP 3333:

* status and headers are validated in ``start_response`` (CR/LF and control bytes, header
  name tokens, hop-by-hop headers), so a bad app gets a 500, never a split response;
* ``exc_info`` may replace the headers until they are sent, and is re-raised after;
* headers go out with the first non-empty body chunk (or at the end, if there is none);
* the iterable's ``close()`` is always called, after a normal response, an app error, and a
  client disconnect alike;
* a short body returned as a list goes to the loop in one hand-off, with a Content-Length;
* a ``wsgi.file_wrapper`` of a regular file goes to the loop as a file region, which the loop
  sends itself (by the kernel's sendfile where it can): the thread is free once the app's
  ``close()`` has run, however slowly the client reads.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from ..errors import ClientDisconnected, RequestBodyError, RequestTimeout
from ..http import plain
from ..http.grammar import TOKEN
from ..http.response import HOP_BY_HOP_FIELDS, NO_CONTENT_STATUSES, ResponseHead
from ..log import error_log
from ..types import Environ, ExcInfo, WriteCallable, WSGIApp
from .bridge import Delivery, FileSlice, OutputChannel
from .interrupt import AppInterrupt

# A list/tuple body up to this size crosses to the loop in a single hand-off.
ONE_HOP_BYTES = 64 * 1024
# Larger chunks are sliced (without copying) so back-pressure acts at this granularity.
SLICE_BYTES = 256 * 1024

_STATUS_RE = re.compile(r"([0-9]{3}) ([^\x00-\x08\x0a-\x1f\x7f]*)\Z")
_TOKEN_RE = re.compile(TOKEN + r"\Z")
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 §7.6.1: these describe one connection, which is the server's business, not the app's.
_HOP_BY_HOP = frozenset(HOP_BY_HOP_FIELDS)

_ABORT = Delivery(None, b"", end=False, last=True, abort=True)


class FileWrapper:
    """``wsgi.file_wrapper``: lets the server send a file with ``sendfile`` (PEP 3333)."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data


def make_head(status: Any, headers: Any) -> Tuple[ResponseHead, Optional[int]]:
    """Validate the app's status and headers; return the head and its Content-Length, if set.

    Raises ValueError/TypeError for anything that could corrupt the response framing.
    """
    if type(status) is not str:
        raise TypeError(f"status must be str, got {type(status).__name__}")
    checked = _checked_statuses.get(status)
    if checked is None:
        checked = _check_status(status)
    if type(headers) is not list:
        raise TypeError(f"headers must be a list, got {type(headers).__name__}")
    out: List[Tuple[bytes, bytes]] = []
    length: Optional[int] = None
    for item in headers:
        # Apps send the same few headers again and again (Content-Type, Cache-Control): one
        # that passed before is its encoded pair. Measured with benchmarks/hotpath.py, the
        # checks cost about 1 µs per header; the lookup, 0.05 µs.
        try:
            pair = _checked_headers.get(item)
        except TypeError:  # unhashable: _check_header says what is wrong with it
            pair = None
        if pair is None:
            pair = _check_header(item)
            if pair is None:
                continue  # a Connection header other than "close": the server's call
            if len(_checked_headers) >= _CHECKED_HEADERS_MAX:
                _checked_headers.clear()  # what is common now is back after one request
            _checked_headers[item] = pair
        if pair[0] == b"content-length":
            declared = int(pair[1][1])
            if length is not None:
                if declared != length:
                    raise ValueError("conflicting Content-Length headers")
                continue
            length = declared
        out.append(pair[1])
    return ResponseHead(checked[0], checked[1], out), length


# Statuses and header items that passed make_head's checks. Bounded: both come from the app,
# which may put anything in them (a session id, a Content-Length per response). A full header
# cache is emptied; a full status cache keeps what it has and checks new ones every time.
_CHECKED_HEADERS_MAX = 1024
_checked_headers: Dict[Tuple[str, str], Tuple[bytes, Tuple[bytes, bytes]]] = {}
_checked_statuses: Dict[str, Tuple[int, bytes]] = {}


def _check_status(status: str) -> Tuple[int, bytes]:
    match = _STATUS_RE.match(status)
    if match is None:
        raise ValueError(f"invalid status line {status!r}")
    code = int(match.group(1))
    if code < 200:
        raise ValueError(f"status {code} cannot be a final response")
    checked = code, match.group(2).encode("latin-1")
    if len(_checked_statuses) < 256:
        _checked_statuses[status] = checked
    return checked


def _check_header(item: Any) -> Optional[Tuple[bytes, Tuple[bytes, bytes]]]:
    """One header's lower-cased name and encoded pair; None to leave it out."""
    if type(item) is not tuple or len(item) != 2:
        raise TypeError(f"header must be a (name, value) tuple, got {item!r}")
    name, value = item
    if type(name) is not str or type(value) is not str:
        raise TypeError(f"header name and value must be str, got {item!r}")
    if _TOKEN_RE.match(name) is None:
        raise ValueError(f"invalid header name {name!r}")
    if _BAD_VALUE_RE.search(value) is not None:
        raise ValueError(f"invalid characters in header {name!r}: {value!r}")
    lower = name.lower()
    if lower in _HOP_BY_HOP:
        raise ValueError(f"hop-by-hop header {name!r} is not allowed from a WSGI app (PEP 3333)")
    if lower == "connection":
        # "Connection: close" from the app is honoured; any other value is the server's call.
        if "close" not in [t.strip().lower() for t in value.split(",")]:
            return None
        value = "close"
    value = value.strip(" \t")
    if lower == "content-length" and not (value.isascii() and value.isdigit()):
        # The loop frames the body by this number without re-parsing the header block.
        raise ValueError(f"invalid Content-Length {value!r}")
    return lower.encode("latin-1"), (name.encode("latin-1"), value.encode("latin-1"))


def _plain(status: int, extra: Tuple[Tuple[bytes, bytes], ...] = ()) -> Delivery:
    """A whole plain-text response of the server's own (http.plain), as the job's last delivery."""
    return Delivery(plain.head(status, extra), plain.body(status), end=True, last=True)


_QUEUE_TIMEOUT = _plain(503, ((b"Retry-After", b"1"),))


class WSGICall:
    """One application call on a pool thread, from ``app(environ, start_response)`` to ``close()``."""

    __slots__ = (
        "_claim",
        "app",
        "channel",
        "environ",
        "head",
        "head_sent",
        "interrupt",
        "length",
        "queue_expired",
        "queue_timeout",
        "queued_at",
        "started_at",
        "thread",
    )

    def __init__(
        self,
        app: WSGIApp,
        environ: Environ,
        channel: OutputChannel,
        queue_timeout: float = 0.0,
        interrupt: Optional[AppInterrupt] = None,
    ) -> None:
        self.app = app
        self.environ = environ
        self.channel = channel
        self.queue_timeout = queue_timeout
        self.interrupt = interrupt  # --interrupt-on-timeout: armed while the app runs
        self.queued_at = 0.0  # time.monotonic() when the loop queued this job
        self.started_at = 0.0  # time.monotonic() when a thread took it (read by the loop for stats)
        self.thread = 0  # that thread's ident, for the loop's stack dumps (slowlog.py)
        self.queue_expired = False  # answered 503: it waited over --queue-timeout for a thread
        self.head: Optional[ResponseHead] = None
        self.length: Optional[int] = None  # the app's Content-Length
        self.head_sent = False
        # Whoever pops this first owns the request: the thread that starts it, or the loop
        # cancelling it while it waits in the pool's queue (list.pop is atomic under the GIL).
        self._claim = [True]

    def cancel(self) -> bool:
        """[loop] Take the request from the pool's queue before a thread starts it; False if one has."""
        try:
            self._claim.pop()
        except IndexError:
            return False
        return True

    def run(self) -> None:
        """The pool job. Always ends with exactly one ``last`` delivery, whatever the app does."""
        final = _ABORT
        try:
            self._claim.pop()
        except IndexError:  # the loop answered it (--queue-timeout, client gone): just free the slot
            self.channel.finish(final)
            return
        self.started_at = time.monotonic()
        self.thread = threading.get_ident()
        if self.channel.closed:
            # The client left while this request waited for a thread: don't run the app for nobody.
            error_log.debug("client gone before %s started; not running the app", self._request_line())
            self.channel.finish(final)
            return
        if self.queue_timeout and time.monotonic() - self.queued_at > self.queue_timeout:
            error_log.info("%s waited over --queue-timeout for a thread: 503", self._request_line())
            self.queue_expired = True
            self.channel.finish(_QUEUE_TIMEOUT)
            return
        try:
            final = self._call_app() if self.interrupt is None else self._call_interruptible(self.interrupt)
        except ClientDisconnected:
            error_log.debug("client disconnected during %s", self._request_line())
        except RequestTimeout:
            if self.interrupt is not None:
                self.interrupt.disarm()  # again, if it landed on the way into the first
            error_log.info("%s interrupted at --request-timeout (--interrupt-on-timeout)", self._request_line())
        except RequestBodyError as exc:
            error_log.info("request body for %s: %s", self._request_line(), exc)
            if not self.head_sent:
                final = _plain(exc.status)
        except Exception:
            error_log.exception("error in WSGI application handling %s", self._request_line())
            if not self.head_sent:
                final = _plain(500)
        finally:
            self.channel.finish(final)

    def start_response(
        self, status: str, headers: List[Tuple[str, str]], exc_info: Optional[ExcInfo] = None
    ) -> WriteCallable:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the traceback reference cycle (PEP 3333)
        elif self.head is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.head, self.length = make_head(status, headers)
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's legacy ``write()``: blocks until the loop has taken the bytes."""
        if self.head is None:
            raise AssertionError("write() called before start_response()")
        self._send(data)

    # --- internals --------------------------------------------------------------------------

    def _call_app(self) -> Delivery:
        result = self.app(self.environ, self.start_response)
        body: Union[bytes, FileSlice] = b""
        try:
            body = self._consume(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException:
                    if type(body) is FileSlice:
                        os.close(body.file)  # the loop will never have it
                    raise
        return self._final(body)

    def _call_interruptible(self, interrupt: AppInterrupt) -> Delivery:
        """``_call_app`` with RequestTimeout armed from the app's call to its ``close()`` (and the
        final delivery's making, which is this request's alone)."""
        interrupt.arm()
        try:
            return self._call_app()
        finally:
            interrupt.disarm()

    def _consume(self, result: Iterable[bytes]) -> Union[bytes, FileSlice]:
        """Stream the iterable; return what is still to send with the final hand-off: bytes, or
        a file region the loop sends itself."""
        kind = type(result)
        if (kind is list or kind is tuple) and not self.head_sent:
            total = 0
            for chunk in result:
                if type(chunk) is not bytes:
                    _check_chunk(chunk)
                total += len(chunk)
                if total > ONE_HOP_BYTES:
                    break
            else:
                return b"".join(result)
        elif kind is FileWrapper and not self.head_sent:
            region = self._regular_file(result)  # type: ignore[arg-type]
            if region is not None:
                return region
        for chunk in result:
            self._send(chunk)
        return b""

    def _send(self, data: Any) -> None:
        if type(data) is not bytes:
            _check_chunk(data)
        if not data:
            return  # headers wait for the first non-empty chunk (PEP 3333)
        head = None
        if not self.head_sent:
            head = self._require_head()
            self.head_sent = True
        size = len(data)
        if size <= SLICE_BYTES:
            self.channel.send(Delivery(head, data, False, False), size)
            return
        view = memoryview(data)
        for start in range(0, size, SLICE_BYTES):
            piece = view[start : start + SLICE_BYTES]
            self.channel.send(Delivery(head, piece, False, False), len(piece))
            head = None

    def _final(self, body: Union[bytes, FileSlice]) -> Delivery:
        if type(body) is FileSlice:
            self.head_sent = True
            return Delivery(self._require_head(), b"", end=True, last=True, file=body)
        assert type(body) is bytes
        head = None
        if not self.head_sent:
            head = self._require_head()
            declared = self.length
            if (
                declared is not None
                and declared != len(body)
                and head.status_code not in NO_CONTENT_STATUSES
                and self.environ["REQUEST_METHOD"] != "HEAD"
            ):
                # The whole response is here and nothing is sent: answer for the app's mistake
                # instead of sending a response whose framing is a lie.
                error_log.error(
                    "%s: the app declared Content-Length %d but its body is %d bytes; answering 500",
                    self._request_line(),
                    declared,
                    len(body),
                )
                self.head_sent = True
                return _plain(500)
            if (
                declared is None
                and head.status_code not in NO_CONTENT_STATUSES
                and (body or self.environ["REQUEST_METHOD"] != "HEAD")
            ):
                # Nothing has been sent yet, so ``body`` is the whole body: frame it by length
                # rather than chunked, which also lets HTTP/1.0 clients keep the connection.
                # Not from an empty HEAD body: apps return none for HEAD (Werkzeug does), and the
                # GET of the same URL need not be empty (RFC 9110 §9.3.2).
                head.headers.append((b"Content-Length", str(len(body)).encode()))
            self.head_sent = True
        return Delivery(head, body, end=True, last=True)

    def _regular_file(self, wrapper: FileWrapper) -> Optional[FileSlice]:
        """A regular file, from where it stands to its end (or the app's Content-Length), as a
        region the loop sends itself: the final Delivery carries it, and the thread is free at
        once, however slowly the client reads. The loop gets a descriptor of its own (``dup``),
        so the app's ``close()`` does not close the file under it. None for anything else (the
        wrapper is iterated)."""
        filelike = wrapper.filelike
        try:
            info = os.fstat(filelike.fileno())
            offset = filelike.tell()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        try:
            descriptor = os.dup(filelike.fileno())
        except OSError:
            return None  # out of descriptors: it is read through the channel instead
        head = self._require_head()
        count = max(0, info.st_size - offset)
        if self.length is not None:
            count = min(count, self.length)
        elif head.status_code not in NO_CONTENT_STATUSES:
            head.headers.append((b"Content-Length", str(count).encode()))
        return FileSlice(descriptor, offset, count)

    def _require_head(self) -> ResponseHead:
        if self.head is None:
            raise AssertionError("the application returned a body without calling start_response()")
        return self.head

    def _request_line(self) -> str:
        env = self.environ
        return f"{env.get('REQUEST_METHOD')} {env.get('RAW_URI')}"


def _check_chunk(chunk: Any) -> None:
    if not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(f"the application must yield bytes, got {type(chunk).__name__}")
