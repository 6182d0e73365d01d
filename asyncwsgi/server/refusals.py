"""The answer to a request the server refuses without the app. [loop]

A refusal is a short plain-text response with ``Connection: close`` (the protocol then
half-closes and lingers so the client reads it). It is logged to the error log with its
reason, counted in the stats, and written to the access log like any response, with the
request line when there was one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import h11

from ..accesslog import AccessRecord, log_access
from ..http import plain
from ..log import error_log
from .exchange import request_line

if TYPE_CHECKING:
    from .context import ServerContext


def log_refusal(status: int, peer: str, detail: str) -> None:
    error_log.info("%d %s from %s: %s", status, plain.reason(status).decode(), peer, detail)


def refusal(
    ctx: ServerContext,
    status: int,
    request: Optional[h11.Request],
    client: Optional[Tuple[str, str]],
    extra_headers: Sequence[Tuple[bytes, bytes]] = (),
) -> bytes:
    """The bytes of the refusal, counted in the stats and written to the access log."""
    headers = [(b"Date", ctx.date_header()), *extra_headers]
    if ctx.server_header is not None:
        headers.append((b"Server", ctx.server_header))
    ctx.stats.response(status)
    if ctx.config.access_log:
        record = AccessRecord(
            environ={"REMOTE_ADDR": client[0] if client else "-"},
            request_line="-" if request is None else request_line(request),
            status=status,
            bytes_out=len(plain.body(status)),
            bytes_in=0,
            duration=0.0,
            queue=0.0,
            app=0.0,
            disconnected=False,
        )
        log_access(ctx.access_formatter.format(record), ctx.loop)
    return plain.closing(status, headers)
