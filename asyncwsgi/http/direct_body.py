"""Content-Length request bodies handed to the app without passing through h11's buffer. [loop]

h11 reads a body through its receive buffer: each read is appended to a ``bytearray`` and then
sliced out twice (``maybe_extract_at_most`` slices once to test for emptiness, then again to
extract), so every body byte is copied three times, in Python-level calls per read. For a
1 MiB upload that was most of the server's CPU time.

While h11 is inside a Content-Length body and has nothing buffered, the bytes of a read that
belong to the body need no parsing at all: :func:`take` passes them on as they are (the
transport's own ``bytes``) and moves h11's count of what remains, so h11 still sees the message
end and keeps every framing rule (the bytes after the body, ``EndOfMessage``, ``DONE``, EOF
before the end being an error). Chunked bodies, and reads while h11 still holds bytes from the
head's read, go through h11 as before.

This touches two private attributes of h11 (the connection's reader and that reader's remaining
count). :data:`ENABLED` is computed from what the installed h11 actually has, so another h11
falls back to the slow path instead of misbehaving; ``tests/server/test_direct_body.py`` fails if the
installed h11 no longer supports the fast path, so the loss cannot go unnoticed.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import h11

try:
    from h11._readers import ContentLengthReader
except ImportError:  # pragma: no cover - another h11 layout: use the slow path
    ContentLengthReader = None  # type: ignore[assignment,misc]


def _supported() -> bool:
    if ContentLengthReader is None:
        return False
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    conn.next_event()
    reader = getattr(conn, "_reader", None)
    return (
        type(reader) is ContentLengthReader
        and getattr(reader, "_remaining", None) == 2
        and hasattr(conn, "_receive_buffer")
        and hasattr(conn, "client_is_waiting_for_100_continue")
    )


ENABLED: bool = _supported()


def take(conn: h11.Connection, data: bytes) -> Optional[Tuple[bytes, bytes, bool]]:
    """Split ``data`` into (body bytes for the app, bytes after the body, whether the body is now
    complete), or None.

    None means h11 must see ``data`` itself: no Content-Length body is being read, or h11 still
    buffers bytes that come before it. Once the body is complete, the caller feeds the rest to
    h11 and processes events: h11 yields ``EndOfMessage`` next.
    """
    if not ENABLED or conn.their_state is not h11.SEND_BODY:
        return None
    internals: Any = conn
    reader = internals._reader
    if type(reader) is not ContentLengthReader or internals._receive_buffer:
        return None
    remaining: int = reader._remaining
    if remaining == 0:
        return None
    # h11 does this for every Data event: the client sent body bytes, so it no longer waits.
    conn.client_is_waiting_for_100_continue = False
    if len(data) < remaining:
        reader._remaining = remaining - len(data)
        return data, b"", False
    reader._remaining = 0
    if len(data) == remaining:
        return data, b"", True
    return data[:remaining], data[remaining:], True
