"""A request under a static mount (``--static PREFIX=DIR``), answered by the loop from disk. [loop]

No thread is taken, however slowly the client reads: the loop sends the file with the kernel's
sendfile (``writer._send_file``; bounded reads over TLS), one file open per connection at most,
and only while its response is being sent. What is answered, as nginx does (RFC 9110):

* GET and HEAD (a HEAD gets the GET's headers, no body); anything else 405 with ``Allow``;
* a file found safely under the directory (``static.resolve``): 200 with ``Content-Type``,
  ``Content-Length``, ``Last-Modified``, a strong ``ETag``, ``Accept-Ranges: bytes`` and
  ``Cache-Control`` (``static.representation``); else 404, or 301 to a directory's trailing slash
  with ``--static-index``;
* a precompressed ``FILE.br`` or ``FILE.gz`` beside it, when the client accepts that coding, with
  its own ETag and ``Content-Encoding``; ``Vary: Accept-Encoding`` whenever such a copy exists;
* the preconditions in RFC 9110 §13.2.2's order (``http.preconditions``): 304 or 412;
* one range (``http.ranges``): 206 with ``Content-Range``, 416 past the end; several: 200.

The file is opened once and its size taken from that descriptor: a file replaced while it is
sent is sent as it was when opened, and one truncated under it ends the connection, never
sending a byte past the length the head declared.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import h11

from ...http import plain, preconditions, ranges
from ...http.response import NO_BODY, ResponseHead
from ...log import error_log
from ...static.mounts import StaticMount
from ...static.representation import CODINGS, acceptable_codings, represent
from ...static.resolve import REDIRECT, resolve, variant
from ...types import Environ
from ..access import record, request_line
from ..seam import DONE, RUNNING, Connection, CycleReport
from .writer import ResponseWriter

if TYPE_CHECKING:
    from ..context import ServerContext

_ALLOWED = (b"Allow", b"GET, HEAD")
# A file up to this size is read (from the page cache) and written with its head, in one send:
# sendfile's own system call and the task that waits on it cost more than the copy. A 10 KB
# file: 6,780 requests/s read this way, 6,260 by sendfile (medians of 4 alternated runs, 64
# connections, uvloop).
SMALL_FILE_BYTES = 64 * 1024
# The request fields a static response reads.
_FIELDS = frozenset(
    {
        b"accept-encoding",
        b"range",
        b"if-range",
        b"if-match",
        b"if-none-match",
        b"if-modified-since",
        b"if-unmodified-since",
    }
)


class StaticCycle(ResponseWriter):
    """One request for a static file."""

    __slots__ = ("_ctx", "_environ", "_fields", "_file", "_mount", "_raw_path", "_rest", "_started", "_task", "state")

    def __init__(
        self,
        ctx: ServerContext,
        connection: Connection,
        request: h11.Request,
        environ: Environ,
        fields: Sequence[Tuple[bytes, bytes]],
        raw_path: bytes,
        mount: StaticMount,
        rest: str,
    ) -> None:
        super().__init__(connection, request)
        self._ctx = ctx
        self._environ = environ
        self._fields = fields
        self._raw_path = raw_path  # as the client sent it: a redirect's Location
        self._mount = mount
        self._rest = rest  # PATH_INFO past the prefix
        self._started = time.monotonic()
        self._file = -1  # the descriptor being sent
        self._task: Optional[asyncio.Task[None]] = None
        self.state = RUNNING

    @property
    def done(self) -> bool:
        return self.state is DONE

    # --- the answer -----------------------------------------------------------------------------

    def start(self) -> None:
        method = self.request.method
        if method != b"GET" and method != b"HEAD":
            self._plain(405, (_ALLOWED,))
            return
        config = self._ctx.config
        root = self._mount.root
        found = resolve(root, self._rest, config.static_index, config.static_follow_symlinks)
        if found is None:
            self._plain(404)
            return
        if found is REDIRECT:
            query = self._environ.get("QUERY_STRING", "")
            location = self._raw_path + b"/" + (b"?" + query.encode("latin-1") if query else b"")
            self._plain(301, ((b"Location", location),))
            return
        assert isinstance(found, str)
        fields = _fields(self._fields)
        coding = b""
        vary = False
        chosen = found
        wanted = acceptable_codings(fields.get(b"accept-encoding"))
        for name, suffix in CODINGS:
            copy = variant(root, found, suffix, config.static_follow_symlinks)
            if copy is not None:
                vary = True
                if name in wanted and (not coding or wanted.index(name) < wanted.index(coding)):
                    coding, chosen = name, copy
        try:
            descriptor = os.open(chosen, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._refuse_open(exc)
            return
        self._file = descriptor
        info = os.fstat(descriptor)
        self._answer(found, info, coding, vary, fields)

    def _answer(self, name: str, info: os.stat_result, coding: bytes, vary: bool, fields: Dict[bytes, bytes]) -> None:
        size = info.st_size
        default = self._ctx.static_cache_control
        served = represent(name, size, info.st_mtime_ns, coding, vary, default)
        tag, modified = served.tag, served.modified
        status = preconditions.evaluate(
            self.request.method,
            tag,
            modified,
            fields.get(b"if-match"),
            fields.get(b"if-unmodified-since"),
            fields.get(b"if-none-match"),
            fields.get(b"if-modified-since"),
        )
        if status == preconditions.NOT_MODIFIED:
            # RFC 9110 §15.4.5: the validators, and what a cache must update (the type and the
            # ranges are the 200's, which the client holds).
            self._close_file()
            self._write(ResponseHead(304, plain.reason(304), list(served.headers[2:])), None)
            return
        if status is not None:
            self._close_file()
            self._plain(status, [(b"Vary", b"Accept-Encoding")] if vary else ())
            return
        start, stop = 0, size
        if preconditions.range_applies(fields.get(b"if-range"), tag, modified, time.time()):
            wanted = ranges.requested(fields.get(b"range"), size)
            if wanted == ranges.UNSATISFIABLE:
                self._close_file()
                self._plain(416, ((b"Content-Range", ranges.unsatisfied(size)),))
                return
            if wanted != ranges.WHOLE:
                assert isinstance(wanted, tuple)
                start, stop = wanted
        code = 200
        headers = list(served.headers)
        if (start, stop) != (0, size):
            code = 206
            headers.append((b"Content-Range", ranges.content_range(start, stop, size)))
        headers.append((b"Content-Length", b"%d" % (stop - start)))
        self._write(ResponseHead(code, plain.reason(code), headers), (start, stop - start))

    def _write(self, head: ResponseHead, region: Optional[Tuple[int, int]]) -> None:
        out: List[Any] = []
        if region is None or region[1] == 0:
            self._pieces(out, head, b"", True)
            self.connection.writelines(out)
            self._end()
            return
        self._pieces(out, head, b"", False)
        if self.framer.kind is NO_BODY:  # HEAD: the GET's headers, no body
            self._pieces(out, None, b"", True)
            self.connection.writelines(out)
            self._end()
            return
        offset, length = region
        if length <= SMALL_FILE_BYTES:
            data = os.pread(self._file, length, offset)
            if len(data) == length:  # (else it shrank since its fstat: sent below, and cut short)
                self._pieces(out, None, data, True)
                self.connection.writelines(out)
                self._end()
                return
        after = self._file_framing(length, out)
        self.connection.writelines(out)
        self._task = self._ctx.loop.create_task(self._send(offset, length, after))

    async def _send(self, offset: int, length: int, after: bytes) -> None:
        try:
            sent = await self._send_file(self._file, offset, length)
            if sent < length:
                # Truncated while it was sent: the length declared cannot be met.
                error_log.error("%s: the file ended %d bytes early; closing", self._name(), length - sent)
                self.connection.close()
            else:
                out = [after] if after else []
                self._pieces(out, None, b"", True)
                self.connection.writelines(out)
        except asyncio.CancelledError:
            pass  # the connection is lost: the response ends there
        except Exception as exc:
            error_log.debug("%s: sending the file failed: %r", self._name(), exc)
            self.connection.abort()
        finally:
            self._task = None
        self._end()

    def _plain(self, status: int, extra: Sequence[Tuple[bytes, bytes]] = ()) -> None:
        out: List[Any] = []
        self._pieces(out, plain.head(status, extra), plain.body(status), True)
        self.connection.writelines(out)
        self._end()

    def _refuse_open(self, exc: OSError) -> None:
        """A file found but not opened: gone meanwhile, or no descriptor left."""
        if exc.errno in (24, 23):  # EMFILE, ENFILE: the server is out of descriptors
            error_log.warning("%s: cannot open a file (%s); 503", self._name(), exc)
            self._plain(503, ((b"Retry-After", b"1"),))
        else:
            self._plain(404)

    def _end(self) -> None:
        if self.state is DONE:
            return
        self.state = DONE
        self._close_file()
        record(self._ctx, self._environ, self.request, self.status, self.bytes_out, self._started)
        self.connection.cycle_finished(self)

    def _close_file(self) -> None:
        if self._file >= 0:
            os.close(self._file)
            self._file = -1

    def _name(self) -> str:
        return f"{request_line(self.request)} (--static {self._mount.prefix})"

    # --- from the connection (the rest of the seam is quiet: no body is read, no thread waits) --

    def on_body(self, data: bytes) -> None:
        """(A body sent with GET is read and dropped.)"""

    def on_body_end(self) -> None: ...

    def body_failed(self, exc: Exception) -> None: ...

    def client_closed(self, mid_body: bool) -> None: ...

    def client_reset(self) -> None: ...

    def connection_lost(self) -> None:
        if self._task is not None:
            self._task.cancel()  # it ends the response, and closes the file
        else:
            self._end()

    def writes_blocked(self) -> None: ...

    def writes_unblocked(self) -> None:
        self._writes_unblocked()

    def report(self, now: float, stacks: bool) -> CycleReport:
        return CycleReport("sending_file", None, 0.0, False)


def _fields(fields: Sequence[Tuple[bytes, bytes]]) -> Dict[bytes, bytes]:
    """The request fields a static response reads; a field given twice is one list (RFC 9110 §5.3)."""
    found: Dict[bytes, bytes] = {}
    for name, value in fields:
        if name in _FIELDS:
            found[name] = found[name] + b", " + value if name in found else value
    return found
