"""The sizes WebSocket frame headers declare, read as the bytes arrive. [loop]

Pure. wsproto hands a message's data over as it arrives, so a message over ``--ws-max-size``
was refused only once that much had come: a header declaring 2^40 bytes cost the client a
terabyte of sending before it heard 1009. ``FrameSizeWatch`` follows the frame boundaries in
the client's byte stream beside wsproto (RFC 6455 §5.2: 2 to 14 header bytes, then the payload),
adds up the lengths the data frames of a message declare, and says so at the first header that
takes the message over the limit (§7.4.1, 1009), before any of its payload is read.

With permessage-deflate the lengths are those on the wire: a compressed frame over the limit is
refused whatever it would inflate to (what it inflates to is checked as it inflates).
Malformed frames are wsproto's to refuse; this only counts.
"""

from __future__ import annotations

from typing import Optional

_CONTINUATION = 0x0
_CONTROL = 0x8  # opcodes from here on are control frames, which are no part of a message


class FrameSizeWatch:
    """Follows one client's frames; ``feed`` returns where a frame too large begins."""

    __slots__ = ("_header", "_limit", "_message", "_payload_left")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._header = b""  # a frame header read in part
        self._payload_left = 0  # bytes of the current frame's payload still to come
        self._message = 0  # bytes the data frames of the current message declared so far

    def feed(self, data: bytes) -> Optional[int]:
        """Follow ``data``; the offset in it of the header of a frame that takes its message
        over the limit (the header may have begun in an earlier read: then 0), or None."""
        offset = 0
        size = len(data)
        while offset < size:
            left = self._payload_left
            if left:
                step = min(left, size - offset)
                self._payload_left = left - step
                offset += step
                continue
            start = offset - len(self._header)
            header = self._header + data[offset : offset + 14]
            needed = _header_size(header)
            if needed is None or len(header) < needed:
                self._header = header
                return None
            offset += needed - len(self._header)
            self._header = b""
            length = _payload_length(header)
            opcode = header[0] & 0x0F
            if opcode < _CONTROL:
                self._message = length if opcode != _CONTINUATION else self._message + length
                if self._message > self._limit:
                    return max(0, start)
            self._payload_left = length
        return None


def _header_size(header: bytes) -> Optional[int]:
    """The whole header's size once its first two bytes are here (mask key included)."""
    if len(header) < 2:
        return None
    second = header[1]
    size = 2 + (4 if second & 0x80 else 0)
    length = second & 0x7F
    return size + (2 if length == 126 else 8 if length == 127 else 0)


def _payload_length(header: bytes) -> int:
    length = header[1] & 0x7F
    if length == 126:
        return int.from_bytes(header[2:4], "big")
    if length == 127:
        return int.from_bytes(header[2:10], "big")
    return length
