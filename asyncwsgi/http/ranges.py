"""Range requests (RFC 9110 §14): which part of a representation a client asks for. [loop]

Pure. One range (``bytes=0-499``, ``bytes=500-``, ``bytes=-500``) is answered 206 with that part;
a range that starts past the end, on a representation of that size, is unsatisfiable (416, with
``Content-Range: bytes */SIZE``). Several ranges are answered with the whole representation
(200): §14.2 lets a server ignore a Range, clients (browsers, download managers, video players)
ask for one, and ``multipart/byteranges`` buys nothing for the cost of generating it. So is a
Range header that does not parse, or one in a unit other than bytes.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

# What ``requested`` answers besides a (start, stop) pair.
WHOLE = "whole"  # no usable Range: send the whole representation
UNSATISFIABLE = "unsatisfiable"  # 416

Answer = Union[Tuple[int, int], str]


def requested(value: Optional[bytes], size: int) -> Answer:
    """The byte range ``[start, stop)`` that ``Range: value`` asks of ``size`` bytes, or WHOLE or
    UNSATISFIABLE."""
    if value is None:
        return WHOLE
    unit, sep, spec = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return WHOLE
    parts = [part.strip() for part in spec.split(b",") if part.strip()]
    if len(parts) != 1:
        return WHOLE  # none, or several: the whole representation
    first, dash, last = parts[0].partition(b"-")
    if not dash or not (first or last) or not (first.isdigit() or not first) or not (last.isdigit() or not last):
        return WHOLE
    if not first:  # a suffix: the last N bytes
        length = int(last)
        if length == 0:
            return UNSATISFIABLE
        return (max(0, size - length), size) if size else UNSATISFIABLE
    start = int(first)
    stop = int(last) + 1 if last else size
    if last and stop <= start:
        return WHOLE  # last-pos before first-pos: invalid (§14.1.1), ignored
    if start >= size:
        return UNSATISFIABLE
    return start, min(stop, size)


def content_range(start: int, stop: int, size: int) -> bytes:
    """The ``Content-Range`` of a 206 (§14.4)."""
    return b"bytes %d-%d/%d" % (start, stop - 1, size)


def unsatisfied(size: int) -> bytes:
    """The ``Content-Range`` of a 416 (§14.4): the representation's length."""
    return b"bytes */%d" % size
