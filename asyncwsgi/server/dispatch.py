"""Which request cycle serves an accepted request head. [loop]

In this order: a probe path the loop answers itself (``--health-path``, ``--ready-path``,
``--stats-path``: ``cycle.probe``); a file under a static mount (``--static``: ``cycle.static``); a
WebSocket handshake under a mount (``cycle.websocket``);
any other request under a mount (``cycle.asgi``); everything else goes to the WSGI app on the
thread pool (``cycle.wsgi``, which may read the body first). A request the server must refuse
(a bad handshake, a bad ``--deadline-header``) comes back as a refusal instead, and no app sees it.
A WSGI request's deadline is decided here too: ``--request-timeout``, or sooner by
``--deadline-header`` from a trusted peer.

The connection calls this and hands over what it knows of the request's arrival (``Arrival``);
the cycles get only what they need of it, and the seam.
"""

from __future__ import annotations

from typing import Optional, Protocol, Tuple, Union

import h11

from ..http.head import Head
from ..http.upgrade import handshake_problem, is_websocket_upgrade
from ..types import Environ
from .context import ServerContext
from .cycle import websocket
from .cycle.asgi import ASGICycle
from .cycle.body import buffer_for
from .cycle.probe import ProbeCycle
from .cycle.static import StaticCycle
from .cycle.wsgi import WSGICycle
from .seam import Connection, Cycle, Refusal


class Arrival(Connection, Protocol):
    """The connection a head arrived on, as dispatch reads it (the cycles see only the seam)."""

    client: Optional[Tuple[str, str]]  # (ip, port), the PROXY header's when a balancer sent one

    def expects_continue(self) -> bool:
        """The client holds its body back until 100 Continue (RFC 9110 §10.1.1)."""

    def head_bytes(self) -> bytes:
        """The head as it came (a WebSocket handshake goes through wsproto)."""

    def peer_ip(self) -> Optional[str]:
        """The socket's own peer (not a forwarded or PROXY client): who may see thread stacks."""


def open_cycle(
    ctx: ServerContext, arrival: Arrival, request: h11.Request, head: Head, environ: Environ, has_body: bool
) -> Union[Cycle, Refusal]:
    local = ctx.local_paths.get(head.path) if ctx.local_paths and request.method in (b"GET", b"HEAD") else None
    if local is not None:
        return ProbeCycle(ctx, arrival, request, environ, local, arrival.peer_ip())
    static = ctx.static.match(environ["PATH_INFO"]) if ctx.static is not None else None
    if static is not None:
        return StaticCycle(ctx, arrival, request, environ, head.fields, head.path, *static)
    mount = ctx.mounts.match(environ["PATH_INFO"]) if ctx.mounts is not None else None
    if mount is not None:
        if not is_websocket_upgrade(head.fields):
            return ASGICycle(ctx, arrival, request, environ, head, mount, has_body)
        problem = handshake_problem(request, head.fields)
        if problem is None and not websocket.available():
            problem = 501, "WebSockets need wsproto: pip install 'asyncwsgi[ws]'"
        return problem or websocket.WebSocketSession(ctx, arrival, request, environ, head, mount, arrival.head_bytes())
    timeout = ctx.config.request_timeout
    if ctx.deadline_key is not None:
        budget = environ.get(ctx.deadline_key)
        if budget is not None and ctx.trusted_peers.trusts(arrival.client[0] if arrival.client else None):
            seconds = _seconds(budget)
            if seconds is None:
                return 400, f"{ctx.config.deadline_header} must be seconds (a number >= 0), got {budget[:40]!r}"
            if not seconds:
                ctx.stats.timeouts["request"] += 1
                return 504, f"no time left by {ctx.config.deadline_header}: the app is not run"
            timeout = min(timeout, seconds) if timeout else seconds
    expects_continue = has_body and arrival.expects_continue()
    buffer_bytes = buffer_for(ctx, head.content_length, expects_continue) if has_body else 0
    return WSGICycle(ctx, arrival, request, environ, has_body, expects_continue, buffer_bytes, timeout)


def _seconds(value: str) -> Optional[float]:
    """A --deadline-header value: a decimal number of seconds, at least 0 (0: no time left)."""
    if not value or not all(c in "0123456789." for c in value):
        return None  # no signs, exponents, inf or nan
    try:
        return float(value)
    except ValueError:
        return None
