"""What every finished request leaves behind: its counts in the stats and its access-log line. [loop]

One place for all of them: a request to the WSGI app, to a mounted ASGI app, a WebSocket, a probe
the loop answered, and a request the server refused. With the default format the line is handed
over as a ``COMBINED`` entry, formatted later in a batch (``accesslog.BatchedStreamHandler``);
any other format is rendered from an ``AccessRecord`` now. ``request_line`` is how logs name a
request (the error log's lines too).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple

import h11

from ..accesslog import AccessRecord, combined_entry, log_access

if TYPE_CHECKING:
    from .context import ServerContext


# What a format other than the default may also read of a request (the default reads none):
# request body bytes, seconds waiting for a thread, seconds in the app, whether the client left
# early, whether it was cut off at its deadline.
Details = Tuple[int, float, float, bool, bool]
NO_DETAILS: Details = (0, 0.0, 0.0, False, False)


def request_line(request: h11.Request) -> str:
    """The request line as text, for logs (escaped by the log module, not here)."""
    method = request.method.decode("ascii")
    return f"{method} {request.target.decode('latin-1')} HTTP/{request.http_version.decode('ascii')}"


def record(
    ctx: ServerContext,
    environ: Mapping[str, Any],
    request: Optional[h11.Request],
    status: int,
    bytes_out: int,
    started: float,
    details: Optional[Callable[[], Details]] = None,
    queued: Optional[float] = None,
) -> None:
    """Count a finished request (``status`` 0: no response went out; ``queued``: the seconds
    it waited for a thread, if it ran on one) and log it (``request`` None: no head was parsed).

    ``started`` is its ``time.monotonic()`` head time (the line's duration runs from it; 0: none).
    ``details`` is asked only by a format that shows them: the default line is made without.
    """
    if ctx.config.access_log:
        line = "-" if request is None else request_line(request)
        duration = time.monotonic() - started if started else 0.0
        formatter = ctx.access_formatter
        if formatter.combined:
            log_access(combined_entry(environ, line, status, bytes_out, duration), ctx.loop)
        else:
            bytes_in, queue, app, disconnected, timed_out = NO_DETAILS if details is None else details()
            record = AccessRecord(
                environ, line, status, bytes_out, bytes_in, duration, queue, app, disconnected, timed_out
            )
            log_access(formatter.format(record), ctx.loop)
    if status:
        ctx.stats.response(status)
    if queued is not None:
        ctx.stats.queued(queued)
