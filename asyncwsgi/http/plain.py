"""The plain-text responses the server makes up itself: refusals, errors, its own answers. [any]

Pure, and the one place they are shaped: a refusal of a request the app never saw (400, 408,
413, 414, 431, 501, 503, 504, with ``Connection: close``), the 500 and 413 the WSGI thread sends
for an app's error or a body that failed, the 500, 403 and 413 for a mounted ASGI app, and the
503 for a client over ``--max-connections-per-ip``. Each is ``text/plain; charset=utf-8`` with
its reason phrase as the body, so a client (or a person with curl) reads what happened.

Reason phrases are RFC 9110's (§15); Python's ``http.HTTPStatus`` before 3.13 still has a few
older names, which are replaced here.
"""

from __future__ import annotations

import http
from typing import Dict, Sequence, Tuple

from .response import ResponseHead, simple_response

REASONS: Dict[int, bytes] = {status.value: status.phrase.encode("ascii") for status in http.HTTPStatus}
REASONS.update(
    {
        413: b"Content Too Large",
        414: b"URI Too Long",
        416: b"Range Not Satisfiable",
        422: b"Unprocessable Content",
    }
)
CONTENT_TYPE = (b"Content-Type", b"text/plain; charset=utf-8")


def reason(status: int) -> bytes:
    """The reason phrase of ``status`` (empty for a status RFC 9110 does not name)."""
    return REASONS.get(status, b"")


def body(status: int) -> bytes:
    """The body of a plain response: its reason phrase and a newline."""
    return (REASONS.get(status) or b"Error") + b"\n"


def head(status: int, extra: Sequence[Tuple[bytes, bytes]] = ()) -> ResponseHead:
    """The head of a plain response with ``body(status)`` as its body (length included)."""
    headers = [CONTENT_TYPE, (b"Content-Length", b"%d" % len(body(status))), *extra]
    return ResponseHead(status, reason(status), headers)


def closing(status: int, headers: Sequence[Tuple[bytes, bytes]] = ()) -> bytes:
    """A whole plain response that ends the connection (``Connection: close``), ready to write;
    ``headers`` are the lines to send besides its type and length (Date, Retry-After, ...)."""
    return simple_response(status, reason(status), [CONTENT_TYPE, *headers], body(status))
