"""Response bytes: the status line, the header block, and the body framing. [any]

h11 parses requests; responses we serialise here. The app's status and headers were already
validated on the thread (``wsgi.make_head``), and h11's send path would validate, copy and
re-scan them again: measured with ``benchmarks/hotpath.py``, that was about 30 µs of a
hello-world request, a third of its cost.

The body framing of a response (RFC 9112 §6.3) is decided once, in ``start_response``:

    NO_BODY      HEAD, 204 and 304: headers as for GET, no body bytes at all
    LENGTH       the app set Content-Length: exactly that many bytes, or FramingError
    CHUNKED      no Content-Length, HTTP/1.1 client: the chunked transfer coding
    UNTIL_CLOSE  no Content-Length, HTTP/1.0 client: the body ends when we close

Pure functions and the framer of one response: the loop uses them, and so does an app's thread
writing a whole response itself (``whole_response``, for ``wsgi.bridge.SocketLoan``).
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = "NO_BODY", "LENGTH", "CHUNKED", "UNTIL_CLOSE"

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# Final statuses that never have content (RFC 9110 §15.3.5, §15.4.5): the server frames them
# with no body and invents no Content-Length for them (§8.6).
NO_CONTENT_STATUSES = frozenset({204, 304})
_CONNECTION_CLOSE = b"Connection: close"
_CONNECTION_KEEP_ALIVE = b"Connection: keep-alive"
_CHUNKED = b"Transfer-Encoding: chunked"
_LAST_CHUNK = b"0\r\n\r\n"

_status_lines: Dict[Tuple[int, bytes], bytes] = {}


# Fields about the connection rather than the response (RFC 9110 §7.6.1): the server's to send,
# never an app's (PEP 3333 says so for WSGI; framing is ours for ASGI too). Connection: close
# from an app is honoured apart.
HOP_BY_HOP_FIELDS = (
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
)


class ResponseHead(NamedTuple):
    """A response's status and headers, as the app gave them (validated by wsgi.app.make_head)."""

    status_code: int
    reason: bytes
    headers: List[Tuple[bytes, bytes]]


class FramingError(Exception):
    """The app's body does not match its framing (e.g. Content-Length); the connection must close."""


class BodyFramer:
    """Frames one response body as it is written; counts bytes against Content-Length."""

    __slots__ = ("excess", "kind", "remaining")

    def __init__(self, kind: str, length: int) -> None:
        self.kind = kind
        self.remaining = length  # LENGTH: bytes still owed
        # LENGTH: bytes the app wrote past its Content-Length, which were not sent. PEP 3333: a
        # server sends no more than Content-Length bytes; the connection then has to close.
        self.excess = 0

    def data(self, data: Any) -> List[Any]:
        """The pieces to write for ``data`` (passed through uncopied, or cut at Content-Length)."""
        kind = self.kind
        size = len(data)
        if kind is LENGTH:
            remaining = self.remaining
            if size > remaining:
                self.remaining = 0
                self.excess += size - remaining
                return [data[:remaining]] if remaining else []
            self.remaining = remaining - size
            return [data]
        if kind is CHUNKED:
            return [b"%x\r\n" % size, data, b"\r\n"] if size else []
        if kind is UNTIL_CLOSE:
            return [data]
        return []  # NO_BODY

    def around(self, size: int) -> Tuple[bytes, bytes]:
        """What goes before and after ``size`` body bytes we send without holding them (sendfile)."""
        if self.kind is CHUNKED and size:
            return b"%x\r\n" % size, b"\r\n"
        if self.kind is LENGTH:
            if size > self.remaining:
                raise FramingError("the app sent more bytes than its Content-Length")
            self.remaining -= size
        return b"", b""

    def end(self) -> bytes:
        """The bytes that end the body."""
        if self.kind is CHUNKED:
            return _LAST_CHUNK
        if self.kind is LENGTH and self.remaining:
            raise FramingError("the app sent fewer bytes than its Content-Length")
        return b""


def start_response(
    head: ResponseHead,
    *,
    head_request: bool,
    http11: bool,
    close: bool,
    extra: Tuple[bytes, ...],
) -> Tuple[bytes, BodyFramer, bool]:
    """Serialise ``head``; return its bytes, the body framer, and whether the connection closes.

    ``extra`` are whole header lines the server adds (Date, Server); ``close`` is the server's
    own reason to close after this response, and for an HTTP/1.0 client it is set unless the
    client asked for keep-alive. A body of unknown length to an HTTP/1.0 client is delimited by
    closing (RFC 9112 §6.3); otherwise the connection persists, and since an HTTP/1.0 client
    assumes it does not, the response says ``Connection: keep-alive`` (§9.3).
    """
    code = head.status_code
    length: Optional[int] = None
    app_close = False
    own = 0  # which of Date and Server the app set itself
    lines = [_status_line(code, head.reason)]
    for name, value in head.headers:
        lower = name.lower()
        if lower == b"content-length":
            if code == 204:
                continue  # RFC 9110 §8.6: never in a 204, whatever the app says
            length = int(value)  # validated by wsgi.make_head (asgi.messages for ASGI)
        elif lower == b"connection":
            app_close = True  # make_head keeps only "Connection: close"
        elif lower == b"date":
            own |= _OWN_DATE
        elif lower == b"server":
            own |= _OWN_SERVER
        lines.append(name + b": " + value)
    if not own:
        lines.extend(extra)
    else:
        # RFC 9110 §6.6.1: one Date. The app's Date and Server win (Werkzeug sets Date on every
        # conditional response, Flask's send_file included), as under wsgiref and gunicorn.
        lines.extend(line for line in extra if not own & _owner(line))
    if code in NO_CONTENT_STATUSES:
        kind = NO_BODY
    elif length is not None:
        kind = NO_BODY if head_request else LENGTH
    else:
        # Headers as a GET would get them, even for HEAD (RFC 9110 §9.3.2).
        if http11:
            kind = NO_BODY if head_request else CHUNKED
            lines.append(_CHUNKED)
        else:
            kind = NO_BODY if head_request else UNTIL_CLOSE
    closes = close or app_close or kind is UNTIL_CLOSE
    if closes and not app_close:
        lines.append(_CONNECTION_CLOSE)
    elif not closes and not http11:
        lines.append(_CONNECTION_KEEP_ALIVE)
    lines.append(b"\r\n")
    return b"\r\n".join(lines), BodyFramer(kind, length or 0), closes


class WholeResponse(NamedTuple):
    """A response complete in hand, framed: what the app's thread writes itself
    (``wsgi.bridge.SocketLoan``) and what the loop then counts as written."""

    pieces: List[Any]  # the head, then the framed body: written in order, uncopied
    size: int  # their bytes
    framer: BodyFramer  # the body's framing, ended
    closes: bool  # the connection ends after it
    status: int
    body_bytes: int  # body bytes it carries, as the access log counts them


def whole_response(
    head: ResponseHead, body: bytes, *, head_request: bool, http11: bool, close: bool, extra: Tuple[bytes, ...]
) -> Optional[WholeResponse]:
    """``head`` and all of its ``body`` framed as ``start_response`` says; None where the body
    does not match its framing (the loop's own path then says why and acts on it)."""
    data, framer, closes = start_response(head, head_request=head_request, http11=http11, close=close, extra=extra)
    pieces: List[Any] = [data]
    body_bytes = 0
    if body and framer.kind is not NO_BODY:
        pieces.extend(framer.data(body))
        if framer.excess:
            return None
        body_bytes = len(body)
    if framer.kind is LENGTH and framer.remaining:
        return None  # short of its Content-Length
    end = framer.end()
    if end:
        pieces.append(end)
    return WholeResponse(pieces, sum(len(piece) for piece in pieces), framer, closes, head.status_code, body_bytes)


_OWN_DATE, _OWN_SERVER = 1, 2


def _owner(line: bytes) -> int:
    """Which of Date and Server an extra header line is."""
    name = line[: line.find(b":")].lower()
    return _OWN_DATE if name == b"date" else _OWN_SERVER if name == b"server" else 0


def simple_response(code: int, reason: bytes, headers: List[Tuple[bytes, bytes]], body: bytes) -> bytes:
    """A whole response the server writes itself (errors), always ending the connection."""
    lines = [_status_line(code, reason)]
    lines.extend(name + b": " + value for name, value in headers)
    lines.append(b"Content-Length: %d" % len(body))
    lines.append(_CONNECTION_CLOSE)
    lines.append(b"\r\n")
    return b"\r\n".join(lines) + body


def _status_line(code: int, reason: bytes) -> bytes:
    key = (code, reason)
    line = _status_lines.get(key)
    if line is None:
        line = b"HTTP/1.1 %d %s" % key
        if len(_status_lines) < 256:  # reasons are app-chosen: bound the cache
            _status_lines[key] = line
    return line
