"""A parsed request head, checked: what h11 leaves to servers. [loop]

Pure: a function of h11's ``Request`` and the configured limits, no socket, loop or clock, so
every rule is tested by a table of cases (``tests/unit/test_head.py``). The checks, in order:

* HTTP/1.x only (h11 parses any single digit; RFC 9110 §15.6.6): else 505;
* the request line, each field, the field count and the whole head against their limits
  (h11 bounds only heads still incomplete; one that arrives whole in one read is parsed
  whatever its size): 414, 431;
* framing (RFC 9112 §6.1, §6.3): Content-Length with Transfer-Encoding, Transfer-Encoding in
  HTTP/1.0, a repeated or listed Content-Length (h11 merges equal ones), a repeated
  Content-Type: 400;
* Host (§3.2): missing on HTTP/1.1, repeated or malformed: 400; the target form (§3.2): 400;
  an absolute-form target's authority replaces Host (§3.2.2);
* a Content-Length over the body limit: 413, from the head alone.
"""

from __future__ import annotations

from typing import Callable, Iterable, List, NamedTuple, Optional, Tuple

import h11

from . import wirecheck
from .target import BadTarget, check_host, split_target


class HeadLimits(NamedTuple):
    """The configured limits a head is checked against (from ``Config``, by the server)."""

    max_request_line_bytes: int
    max_header_bytes: int
    max_header_count: int
    max_head_bytes: int
    max_body_bytes: int


class HeadRefused(Exception):
    """The head is refused: answer ``status`` with ``Connection: close``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Head(NamedTuple):
    """A head that passed every check, with what the connection and the environ need."""

    fields: List[Tuple[bytes, bytes]]  # lower-case names, in order; Host is the target's if absolute-form
    path: bytes
    query: bytes
    content_length: Optional[int]
    chunked: bool
    close: bool  # Connection: close, or HTTP/1.0 without keep-alive (RFC 9112 §9.3)


def check_request(request: h11.Request, raw_head: Callable[[], bytes], limits: HeadLimits) -> Head:
    """Check ``request``; ``raw_head`` gives its bytes, for the rare rule that needs them."""
    version = request.http_version
    if version[:2] != b"1.":
        raise HeadRefused(505, f"unsupported HTTP version {version!r}")
    if len(request.method) + len(request.target) + 10 > limits.max_request_line_bytes:
        raise HeadRefused(414, f"request line longer than {limits.max_request_line_bytes} bytes")
    # One pass over the fields for every check below; the list is kept for the Host check and
    # the environ. h11's Headers iterate through Sequence.__iter__ and a Python __getitem__ per
    # field; its private list of (raw name, name, value) is read directly where it exists (0.5 µs
    # of 0.7 for wrk's three fields; tests/unit/test_head.py fails if h11 drops it).
    full = getattr(request.headers, "_full_items", None)
    fields: List[Tuple[bytes, bytes]] = (
        [(name, value) for _, name, value in full] if full is not None else list(request.headers)
    )
    content_length: Optional[int] = None
    chunked = close = keep_alive = content_type = False
    max_field = limits.max_header_bytes
    head_bytes = len(request.method) + len(request.target) + 12
    for field in fields:
        name, value = field
        size = len(name) + len(value)
        if size + 2 > max_field:
            raise HeadRefused(431, field_too_large(name, max_field))
        head_bytes += size + 4
        if name == b"content-length":
            content_length = int(value)  # h11 has validated it (and merged duplicates)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type":
            # A singleton (RFC 9110 §8.3): two would leave the body's meaning to whichever of a
            # proxy and the app picks which (gunicorn refuses it too).
            if content_type:
                raise HeadRefused(400, "repeated Content-Type header")
            content_type = True
        elif name == b"connection":
            tokens = [token.strip() for token in value.lower().split(b",")]
            if b"close" in tokens:
                close = True
            elif b"keep-alive" in tokens:
                keep_alive = True
    if len(fields) > limits.max_header_count:
        raise HeadRefused(431, too_many_fields(len(fields), limits.max_header_count))
    if head_bytes > limits.max_head_bytes:
        raise HeadRefused(431, f"request head of {head_bytes} bytes is over --max-head-bytes")
    if content_length is not None:
        if chunked:
            # RFC 9112 §6.1: ambiguous framing is how requests get smuggled; refuse it.
            raise HeadRefused(400, "Content-Length together with Transfer-Encoding")
        # h11 merges "5, 5" and repeated equal fields into one; §6.3 lets us refuse both.
        fault = wirecheck.content_length_fault(raw_head())
        if fault is not None:
            raise HeadRefused(400, fault)
    if chunked and version == b"1.0":
        # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
        raise HeadRefused(400, "Transfer-Encoding in an HTTP/1.0 request")
    try:
        check_host(version, fields)
        path, query, authority = split_target(request.method, request.target)
    except BadTarget as exc:
        raise HeadRefused(400, str(exc)) from None
    if authority is not None:
        # RFC 9112 §3.2.2: with an absolute-form target the Host header is ignored: the
        # target's authority is the host.
        fields = [field for field in fields if field[0] != b"host"]
        fields.append((b"host", authority))
    if limits.max_body_bytes and content_length is not None and content_length > limits.max_body_bytes:
        # Answered from the head alone: the body is never read (nor invited by 100 Continue).
        raise HeadRefused(413, f"Content-Length {content_length} is over --max-body-bytes")
    if version < b"1.1" and not keep_alive:
        close = True  # HTTP/1.0 persists only by the client's "Connection: keep-alive" (§9.3)
    return Head(fields, path, query, content_length, chunked, close)


def check_fields(fields: Iterable[Tuple[bytes, bytes]], max_field_bytes: int, max_fields: int) -> Optional[str]:
    """Why trailer fields break the header limits, or None."""
    count = 0
    for name, value in fields:
        count += 1
        if len(name) + len(value) + 2 > max_field_bytes:
            return field_too_large(name, max_field_bytes)
    if count > max_fields:
        return too_many_fields(count, max_fields)
    return None


def field_too_large(name: bytes, limit: int) -> str:
    return f"header field {name[:64]!r} is over --max-header-bytes ({limit})"


def too_many_fields(count: int, limit: int) -> str:
    return f"{count} header fields is over --max-header-count ({limit})"
