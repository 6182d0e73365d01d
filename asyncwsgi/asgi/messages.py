"""Checks on what a mounted ASGI app sends, before any of it reaches the socket. [loop]

Pure. A bad ``http.response.start`` raises here, in the app's ``send()``, so the app sees the
error where it made it, and the client gets a 500 instead of a corrupt response.
"""

from __future__ import annotations

import re
from typing import Any, List, Tuple

from ..http import plain
from ..http.grammar import TOKEN_BYTES
from ..http.response import HOP_BY_HOP_FIELDS, ResponseHead

_TOKEN = re.compile(TOKEN_BYTES + rb"\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# Hop-by-hop fields are the server's (http.response.HOP_BY_HOP_FIELDS): a 500, but for
# Transfer-Encoding, which the ASGI spec says to ignore. Connection: close is honoured, as from a
# WSGI app.
_HOP_BY_HOP = frozenset(name.encode("ascii") for name in HOP_BY_HOP_FIELDS)


def response_head(message: Any) -> Tuple[ResponseHead, bool]:
    """The head of an ``http.response.start`` message, and whether it set Content-Length.

    Raises TypeError or ValueError for anything that could corrupt the response.
    """
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 599:
        raise ValueError(f"http.response.start: status must be an int from 200 to 599, got {status!r}")
    out: List[Tuple[bytes, bytes]] = []
    has_length = False
    for item in message.get("headers", ()):
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError(f"http.response.start: a header must be a [name, value] pair, got {item!r}") from None
        if type(name) is not bytes or type(value) is not bytes:
            raise TypeError(f"http.response.start: header name and value must be bytes, got {item!r}")
        if _TOKEN.match(name) is None:
            raise ValueError(f"http.response.start: invalid header name {name!r}")
        if _BAD_VALUE.search(value) is not None:
            raise ValueError(f"http.response.start: invalid characters in header {name!r}: {value!r}")
        lower = name.lower()
        if lower == b"transfer-encoding":
            # The spec ("Response Start"): the app may send one, the server must ignore it and
            # frame the body itself. (A WSGI app gets a 500 for the same header: PEP 3333 makes
            # every hop-by-hop header an error.)
            continue
        if lower in _HOP_BY_HOP:
            raise ValueError(f"http.response.start: {name.decode()!r} is the server's to send")
        if lower == b"connection":
            if b"close" not in [t.strip().lower() for t in value.split(b",")]:
                continue
            value = b"close"
        value = value.strip(b" \t")
        if lower == b"content-length":
            if not value.isdigit():
                raise ValueError(f"http.response.start: invalid Content-Length {value!r}")
            if has_length:
                if any(n.lower() == b"content-length" and v != value for n, v in out):
                    raise ValueError("http.response.start: conflicting Content-Length headers")
                continue
            has_length = True
        out.append((name, value))
    return ResponseHead(status, plain.reason(status), out), has_length


def body_of(message: Any) -> Tuple[bytes, bool]:
    """The ``body`` and ``more_body`` of an ``http.response.body`` message."""
    body = message.get("body", b"")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"http.response.body: body must be bytes, got {type(body).__name__}")
    return bytes(body) if not isinstance(body, bytes) else body, bool(message.get("more_body", False))
