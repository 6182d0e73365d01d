"""Whether a request head is a WebSocket handshake, and one the server may take (RFC 6455). [loop]

Pure. ``dispatch`` asks, for a head under a mount, before a WebSocket cycle is made: a head that
is not a handshake is an ordinary request to the mounted app; one that is, but breaks §4.2.1 in a
way wsproto leaves to us, is refused with a 4xx and the app never sees it.
"""

from __future__ import annotations

import base64
import binascii
from typing import List, Optional, Tuple

import h11


def is_websocket_upgrade(fields: List[Tuple[bytes, bytes]]) -> bool:
    """Whether a head asks to switch to WebSocket (``Upgrade: websocket``)."""
    return any(name == b"upgrade" and b"websocket" in value.lower() for name, value in fields)


def handshake_problem(request: h11.Request, fields: List[Tuple[bytes, bytes]]) -> Optional[Tuple[int, str]]:
    """RFC 6455 §4.2.1 checks wsproto leaves to us: (status, detail) for a bad handshake."""
    if request.method != b"GET" or request.http_version != b"1.1":
        return 400, "a WebSocket handshake must be GET over HTTP/1.1"
    keys = [value for name, value in fields if name == b"sec-websocket-key"]
    if len(keys) != 1:
        return 400, "a WebSocket handshake needs one Sec-WebSocket-Key"
    try:
        if len(base64.b64decode(keys[0], validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        return 400, "Sec-WebSocket-Key must be 16 bytes in base64"
    return None
