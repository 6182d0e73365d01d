"""Loggers and the access-log line. [loop: access lines; any thread: error logger]

The library only ever logs to these named loggers; configuring handlers is the CLI's job
(or the embedding program's), so embedding asyncwsgi never touches global logging setup.
"""

from __future__ import annotations

import logging
import time

error_log = logging.getLogger("asyncwsgi.error")
access_log = logging.getLogger("asyncwsgi.access")

# C0 controls, DEL and the C1 controls (0x9b is CSI on 8-bit terminals): all client-reachable
# through header values, which h11 passes through as latin-1.
_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0xA0)]}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """Make client-controlled text safe for a log line: no control bytes or terminal escapes."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.translate(_ESCAPES)


class _ClockCache:
    """The common-log timestamp, formatted at most once per second. [loop]"""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        return self._text


_clock = _ClockCache()


def log_access(
    remote: str,
    request_line: str,
    status: int,
    body_bytes: int,
    referer: str,
    user_agent: str,
    duration: float,
) -> None:
    """Emit one combined-log-format line, plus the time taken in milliseconds. [loop]"""
    access_log.info(
        '%s - - [%s] "%s" %d %d "%s" "%s" %.1fms',
        remote,
        _clock.now(),
        escape(request_line),
        status,
        body_bytes,
        escape(referer),
        escape(user_agent),
        duration * 1000.0,
    )
