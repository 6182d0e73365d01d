"""Which exchange serves an accepted request head. [loop]

In this order: a probe path the loop answers itself (``--health-path``, ``--ready-path``,
``--stats-path``); a WebSocket handshake under a mount (``websocket.WebSocketSession``); any other
request under a mount (``asgi_exchange.ASGIExchange``); everything else goes to the WSGI app on
the thread pool (``exchange.Exchange``, which may read the body first). A handshake the
server must refuse comes back as a (status, detail) refusal instead, and the app never sees it.
A WSGI request's deadline is decided here too: ``--request-timeout``, or sooner by
``--deadline-header`` from a trusted peer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple, Union

import h11

from ..http.head import Head
from ..types import Environ
from . import websocket
from .asgi_exchange import ASGIExchange
from .exchange import Exchange
from .websocket import WebSocketSession

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

# A WSGI request (thread pool), or a mounted ASGI app's request or WebSocket (loop).
AnyExchange = Union[Exchange, ASGIExchange, WebSocketSession]
Refusal = Tuple[int, str]


def open_exchange(
    protocol: HTTPProtocol, request: h11.Request, head: Head, environ: Environ, has_body: bool
) -> Union[AnyExchange, Refusal]:
    ctx = protocol.ctx
    local = ctx.local_paths.get(head.path) if ctx.local_paths and request.method in (b"GET", b"HEAD") else None
    mount = ctx.mounts.match(environ["PATH_INFO"]) if ctx.mounts is not None and local is None else None
    if mount is not None:
        if not websocket.is_websocket_upgrade(head.fields):
            return ASGIExchange(protocol, request, environ, head, mount, has_body)
        problem = websocket.handshake_problem(request, head.fields)
        if problem is None and not websocket.available():
            problem = 501, "WebSockets need wsproto: pip install 'asyncwsgi[ws]'"
        return problem or WebSocketSession(protocol, request, environ, head, mount)
    timeout = ctx.config.request_timeout
    if ctx.deadline_key is not None and local is None:
        budget = environ.get(ctx.deadline_key)
        if budget is not None and ctx.trusted_peers.trusts(protocol.client[0] if protocol.client else None):
            seconds = _seconds(budget)
            if seconds is None:
                return 400, f"{ctx.config.deadline_header} must be seconds (a number >= 0), got {budget[:40]!r}"
            if not seconds:
                ctx.stats.timeouts["request"] += 1
                return 504, f"no time left by {ctx.config.deadline_header}: the app is not run"
            timeout = min(timeout, seconds) if timeout else seconds
    buffer_bytes = 0
    if has_body and local is None:
        expects_continue = protocol._parser().they_are_waiting_for_100_continue
        buffer_bytes = ctx.request_buffer_for(head.content_length, expects_continue)
    return Exchange(protocol, request, environ, has_body, local, buffer_bytes, timeout)


def _seconds(value: str) -> Optional[float]:
    """A --deadline-header value: a decimal number of seconds, at least 0 (0: no time left)."""
    if not value or not all(c in "0123456789." for c in value):
        return None  # no signs, exponents, inf or nan
    try:
        return float(value)
    except ValueError:
        return None
