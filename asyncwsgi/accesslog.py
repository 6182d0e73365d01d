"""The access-log line: gunicorn-compatible atoms plus our own, as text or JSON. [loop]

``--access-log-format`` takes a format in gunicorn's syntax (``%(h)s %(r)s ...``, so existing
log parsers keep working) or one of the names ``combined`` (the default) and ``json``. Atoms:

    h remote address    t time [10/Oct/2026:13:55:36 +0000]   r request line   s status
    b body bytes or -    B body bytes    f referer    a user agent    m method    U path
    q query string       H protocol      p process id
    T seconds (int)      D microseconds  M milliseconds       L seconds (decimal)
    {name}i request header      {name}e environ key
    ours:  Q ms waiting for a thread     A ms in the app      I request body bytes
           O response body bytes         x "disconnected" if the client left early, else "-"

Every client-controlled value is escaped (control bytes, quotes, backslashes), text or JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .log import access_log, escape

COMBINED = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'
_ATOM_RE = re.compile(r"%\((\{[^}]*\}[ie]|[a-zA-Z])\)s")


@dataclass
class AccessRecord:
    """What one finished request contributes to the access log."""

    environ: Mapping[str, Any]
    request_line: str
    status: int
    bytes_out: int
    bytes_in: int
    duration: float  # seconds from the request head to the end of the response
    queue: float  # seconds waiting for a thread (0 when answered without one)
    app: float  # seconds in the app
    disconnected: bool
    timed_out: bool = False  # cut off at --request-timeout


class _ClockCache:
    """The common-log timestamp, formatted at most once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime(second))
        return self._text


_clock = _ClockCache()


def _env(key: str, default: str = "-") -> Callable[[AccessRecord], str]:
    return lambda r: escape(str(r.environ.get(key, default) or default))


_ATOMS: Dict[str, Callable[[AccessRecord], Any]] = {
    "h": _env("REMOTE_ADDR"),
    "l": lambda r: "-",
    "u": lambda r: "-",
    "t": lambda r: _clock.now(),
    "r": lambda r: escape(r.request_line),
    "s": lambda r: r.status,
    "b": lambda r: r.bytes_out or "-",
    "B": lambda r: r.bytes_out,
    "f": _env("HTTP_REFERER"),
    "a": _env("HTTP_USER_AGENT"),
    "m": _env("REQUEST_METHOD"),
    "U": _env("PATH_INFO"),
    "q": _env("QUERY_STRING", ""),
    "H": _env("SERVER_PROTOCOL"),
    "p": lambda r: os.getpid(),
    "T": lambda r: int(r.duration),
    "D": lambda r: int(r.duration * 1_000_000),
    "M": lambda r: f"{r.duration * 1000:.1f}",
    "L": lambda r: f"{r.duration:.6f}",
    "Q": lambda r: f"{r.queue * 1000:.1f}",
    "A": lambda r: f"{r.app * 1000:.1f}",
    "I": lambda r: r.bytes_in,
    "O": lambda r: r.bytes_out,
    "x": lambda r: "timeout" if r.timed_out else "disconnected" if r.disconnected else "-",
}


def _atom(name: str) -> Callable[[AccessRecord], Any]:
    if name.startswith("{"):
        key, kind = name[1:-2], name[-1]
        if kind == "i":
            return _env("HTTP_" + key.upper().replace("-", "_"))
        return _env(key)
    return _ATOMS[name]


class AccessFormatter:
    """Compiled once from ``--access-log-format``; renders one line per request."""

    def __init__(self, spec: str) -> None:
        self.json = spec == "json"
        text = COMBINED if spec in ("combined", "json") else spec
        self._pieces: List[Tuple[str, Callable[[AccessRecord], Any]]] = []
        position = 0
        for match in _ATOM_RE.finditer(text):
            self._pieces.append((text[position : match.start()].replace("%%", "%"), _atom(match.group(1))))
            position = match.end()
        self._tail = text[position:].replace("%%", "%")

        # The default format, written out: 1.0 µs a line against 2.3 µs through the atoms; the
        # server then hands over a CombinedEntry instead of a line (log_access).
        self.combined = text == COMBINED and not self.json

    def format(self, record: AccessRecord) -> str:
        if self.combined:
            return _format_combined(record)
        if self.json:
            return json.dumps(_json_fields(record), separators=(",", ":"))
        return "".join(literal + str(render(record)) for literal, render in self._pieces) + self._tail


def _format_combined(r: AccessRecord) -> str:
    """``COMBINED``, the same text as the atoms give (tests/server/test_accesslog.py compares them)."""
    return combined_line(combined_entry(r.environ, r.request_line, r.status, r.bytes_out, r.duration))


# What a ``COMBINED`` line is made of, taken when the request ends; the text is made later, in a
# batch (BatchedStreamHandler.flush). Formatting 800 lines in a row at each flush costs less
# than one between every two requests: measured with benchmarks/hotpath.py, that saves about
# 1.4 µs of the 5 µs an access line costs a hello-world request.
CombinedEntry = Tuple[Any, str, str, int, int, Any, Any, float]


def combined_entry(
    environ: Mapping[str, Any], request_line: str, status: int, bytes_out: int, duration: float
) -> CombinedEntry:
    get = environ.get
    return (
        get("REMOTE_ADDR"),
        _clock.now(),
        request_line,
        status,
        bytes_out,
        get("HTTP_REFERER"),
        get("HTTP_USER_AGENT"),
        duration,
    )


def combined_line(entry: CombinedEntry) -> str:
    address, when, request_line, status, bytes_out, referer, agent, duration = entry
    return (
        f'{escape(str(address or "-"))} - - {when} "{escape(request_line)}" '
        f'{status} {bytes_out or "-"} "{escape(str(referer or "-"))}" '
        f'"{escape(str(agent or "-"))}" {duration * 1000:.1f}ms'
    )


def check_format(spec: str) -> None:
    """Raise ValueError naming an unknown atom (used by Config validation)."""
    if spec in ("combined", "json"):
        return
    for match in re.finditer(r"%\(([^)]*)\)s", spec):
        name = match.group(1)
        if not (name in _ATOMS or name in ("l", "u") or re.fullmatch(r"\{[^}]+\}[ie]", name)):
            raise ValueError(f"unknown atom %({name})s")


def _json_fields(r: AccessRecord) -> Dict[str, Any]:
    # json.dumps escapes control characters itself; values are the raw, unescaped strings.
    env = r.environ
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "remote": env.get("REMOTE_ADDR"),
        "method": env.get("REQUEST_METHOD"),
        "path": env.get("PATH_INFO"),
        "query": env.get("QUERY_STRING") or None,
        "protocol": env.get("SERVER_PROTOCOL"),
        "status": r.status,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "duration_ms": round(r.duration * 1000, 3),
        "queue_ms": round(r.queue * 1000, 3),
        "app_ms": round(r.app * 1000, 3),
        "disconnected": r.disconnected,
        "timed_out": r.timed_out,
        "referer": env.get("HTTP_REFERER"),
        "user_agent": env.get("HTTP_USER_AGENT"),
    }


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[Any]
else:
    _StreamHandler = logging.StreamHandler  # not subscriptable at run time before Python 3.11


class BatchedStreamHandler(_StreamHandler):
    """The command's access-log handler: lines from the event loop are written in batches.

    Written one ``logging`` record at a time, with a write and a flush each, the access log cost
    35% of hello-world throughput on the loop thread (``log.info`` alone is 6.6 µs, plus the
    system call). Lines the loop adds with ``add`` are joined and written at most every
    ``FLUSH_SECONDS``, or sooner past ``FLUSH_BYTES``; each batch is one write of whole lines.
    Records from anywhere else go through ``emit`` as usual, after any pending batch, so the
    order holds. ``flush()``, which ``logging.shutdown()`` calls at exit, writes what is pending:
    a drained server (SIGTERM, Ctrl-C) loses no line; a killed process loses at most the last
    ``FLUSH_SECONDS``.
    """

    FLUSH_SECONDS = 0.05
    FLUSH_BYTES = 64 * 1024

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: List[Union[str, CombinedEntry]] = []
        self._pending_bytes = 0
        self._timer: Optional[asyncio.TimerHandle] = None

    def add(self, line: Union[str, CombinedEntry], loop: asyncio.AbstractEventLoop) -> None:
        """[loop] Queue one access line, or the entry of a ``COMBINED`` line to format later."""
        self._pending.append(line)
        self._pending_bytes += len(line) + 1 if type(line) is str else _ENTRY_BYTES
        if self._pending_bytes >= self.FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.FLUSH_SECONDS, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            pending = self._pending
            if pending:
                self._pending = []
                self._pending_bytes = 0
                try:
                    text = "\n".join([p if isinstance(p, str) else combined_line(p) for p in pending])
                    self.stream.write(text + "\n")
                except Exception:  # like emit: a broken log stream must not break the server
                    self.handleError(logging.makeLogRecord({"msg": str(pending[-1])}))
            super().flush()
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self.flush()
        super().emit(record)


# What a pending CombinedEntry counts for against FLUSH_BYTES: about its line's length.
_ENTRY_BYTES = 100


def log_access(line: Union[str, CombinedEntry], loop: asyncio.AbstractEventLoop) -> None:
    """[loop] Send one access line (or a ``COMBINED`` line's entry): batched to the command's own
    handler, which formats entries when it writes them; else as a log record (an embedding
    program's handlers, caplog, filters and all, see every line as before)."""
    handler = _batched_handler()
    if handler is not None:
        if access_log.isEnabledFor(logging.INFO):
            handler.add(line, loop)
        return
    access_log.info("%s", line if isinstance(line, str) else combined_line(line))


def _batched_handler() -> Optional[BatchedStreamHandler]:
    handlers = access_log.handlers
    if len(handlers) == 1 and type(handlers[0]) is BatchedStreamHandler and not access_log.filters:
        return handlers[0]
    return None
