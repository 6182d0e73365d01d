"""The answer to a request the server refuses without the app. [loop]

A refusal is a short plain-text response (``http.plain``) with ``Connection: close`` (the
connection then half-closes and lingers so the client reads it). It is logged to the error log
with its reason, counted in the stats, and written to the access log like any response, with the
request line when there was one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import h11

from ...http import plain
from ...log import error_log
from ..access import record

if TYPE_CHECKING:
    from ..context import ServerContext


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
    record(ctx, {"REMOTE_ADDR": client[0] if client else "-"}, request, status, len(plain.body(status)), 0.0)
    return plain.closing(status, headers)
