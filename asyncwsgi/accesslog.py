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

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Tuple

from .log import escape

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
    "x": lambda r: "disconnected" if r.disconnected else "-",
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

    def format(self, record: AccessRecord) -> str:
        if self.json:
            return json.dumps(_json_fields(record), separators=(",", ":"))
        return "".join(literal + str(render(record)) for literal, render in self._pieces) + self._tail


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
        "referer": env.get("HTTP_REFERER"),
        "user_agent": env.get("HTTP_USER_AGENT"),
    }
