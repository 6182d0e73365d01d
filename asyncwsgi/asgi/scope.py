"""The ASGI ``http`` scope of a request, made from its WSGI environ. [loop]

Pure. The environ is built first for every request (``ServerContext.environ_for``), so a mounted
app gets exactly what the WSGI app would: the same proxy-header rewriting (client address,
scheme, host), the same ``--root-path``. Then (ASGI spec, "HTTP Connection Scope"):

* ``root_path`` is ``--root-path`` plus the mount's prefix, and ``path`` is the whole path,
  ``root_path`` included (the reading Starlette, asgiref and hypercorn share since 2024), decoded
  from percent-encoding and UTF-8;
* ``raw_path`` is the path as the client sent it, ``query_string`` the bytes after ``?``;
* ``headers`` are the request's fields as received, names lower-cased (h11 does that).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..types import Environ

# spec_version: the HTTP and WebSocket message format as of 2.5, which added the client's close
# ``reason`` to websocket.disconnect (2.4: send() after a disconnect raises an OSError).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.5"}


def http_scope(
    environ: Environ,
    prefix: str,
    raw_path: bytes,
    headers: List[Tuple[bytes, bytes]],
    state: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    """The scope of one request to the app mounted at ``prefix``."""
    root = environ["SCRIPT_NAME"]
    path = (root + environ["PATH_INFO"]).encode("latin-1").decode("utf-8", "replace")
    client = None
    if "REMOTE_ADDR" in environ:
        client = (environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT") or 0))
    scope: Dict[str, Any] = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": environ["SERVER_PROTOCOL"][5:],
        "method": environ["REQUEST_METHOD"],
        "scheme": environ["wsgi.url_scheme"],
        "path": path,
        "raw_path": raw_path,
        "query_string": environ["QUERY_STRING"].encode("latin-1"),
        "root_path": root + prefix,
        "headers": headers,
        "client": client,
        "server": (environ["SERVER_NAME"], int(environ["SERVER_PORT"])),
        "extensions": {},
    }
    if state is not None:
        scope["state"] = state.copy()  # lifespan state: each request gets its own shallow copy
    return scope


def websocket_scope(
    environ: Environ,
    prefix: str,
    raw_path: bytes,
    headers: List[Tuple[bytes, bytes]],
    state: Optional[Dict[str, Any]],
) -> Dict[str, Any]:
    """The scope of a WebSocket handshake to the app mounted at ``prefix`` (ASGI spec,
    "WebSocket Connection Scope"): as for HTTP, with ``ws``/``wss``, no method, the offered
    subprotocols, and the denial-response extension (the app may answer with plain HTTP)."""
    scope = http_scope(environ, prefix, raw_path, headers, state)
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    scope["subprotocols"] = [
        token.strip()
        for name, value in headers
        if name == b"sec-websocket-protocol"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    scope["extensions"] = {"websocket.http.response": {}}
    return scope
