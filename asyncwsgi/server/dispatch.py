"""Which exchange serves an accepted request head. [loop]

In this order: a probe path the loop answers itself (``--health-path``, ``--ready-path``,
``--stats-path``); a WebSocket handshake under a mount (``websocket.WebSocketSession``); any other
request under a mount (``asgi_exchange.ASGIExchange``); everything else goes to the WSGI app on
the thread pool (``exchange.Exchange``, which may read the body first). A handshake the
server must refuse comes back as a (status, detail) refusal instead, and the app never sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple, Union

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
    buffer_bytes = 0
    if has_body and local is None:
        expects_continue = protocol._parser().they_are_waiting_for_100_continue
        buffer_bytes = ctx.request_buffer_for(head.content_length, expects_continue)
    return Exchange(protocol, request, environ, has_body, local, buffer_bytes)
