"""Byte-level framing checks that h11 does not make, run on the raw bytes before h11 sees them. [loop]

Pure: no socket, loop, thread or clock. h11 stays the parser; these classes only refuse what it
would accept but a stricter peer (a proxy in front of us) could read differently. Each of these
is a known request-smuggling primitive, and gunicorn and llhttp refuse them too:

* a bare LF, or a bare CR, anywhere in a head (RFC 9112 §2.2 lets a server accept a bare LF as a
  line end; a CRLF-only front end then sees ``Dummy: x\\nContent-Length: 23`` as one field);
* obs-fold, a field line that starts with a space or tab (RFC 9112 §5.2 allows refusing it);
* control characters other than HTAB in a head (RFC 9110 §5.5);
* a chunk-size line that is not ``chunk-size *( ";" token [ "=" ( token / quoted-string ) ] )
  CRLF`` (RFC 9112 §7.1), where whitespace is allowed only after ``;`` and around ``=``: a space
  after the size or before the CRLF, an empty extension or a bare CR or LF are the "funky
  chunks" that split parsers disagree on; chunk data not followed by CRLF; trailer lines with any
  of the faults above, and trailers that frame or route (``FORBIDDEN_TRAILERS``).

It also does what RFC 9112 §2.2 asks the other way: at most ``MAX_BLANK_LINES`` empty lines
(CRLF) before a request line are skipped instead of refused (some clients send a CRLF after a
POST body).
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple, Union

from .grammar import TOKEN_BYTES

Bytes = Union[bytes, bytearray]

# RFC 9112 §2.2: "SHOULD ignore at least one empty line"; more than this is not a client's slip.
MAX_BLANK_LINES = 8
# A chunk-size line (with its extensions) or one trailer line longer than this is refused. h11
# buffers a chunk header up to its incomplete-event limit; we need no more than a few KiB.
MAX_CHUNK_LINE_BYTES = 4096
# 16 hex digits is 2**64: more cannot be a size anyone means, and h11 would read it as a Python int.
_MAX_CHUNK_SIZE_DIGITS = 16

# Anything a head may not hold: CTLs but HTAB/CR/LF, a CR not before LF, an LF not after CR, and an
# LF followed by SP/HTAB (obs-fold). This one pattern names the fault; it costs 2 µs on a 75-byte
# head (the alternation with lookarounds is tried at every byte), so check_head() tests without it
# and uses it only to say what it found.
_BAD_HEAD_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n|\n[ \t]")
# Every byte but the CTLs (HTAB is not one here): translate(None, _NOT_CTL) keeps only CTLs.
_NOT_CTL = bytes(b for b in range(256) if not ((b < 0x20 and b != 0x09) or b == 0x7F))
_HEAD_FAULTS = {
    b"\r": "a bare CR in the request head",
    b"\n": "a bare LF in the request head (lines must end in CRLF)",
}

_TOKEN = TOKEN_BYTES
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_EXTENSION = rb"%s(?:[ \t]*=[ \t]*(?:%s|%s))?" % (_TOKEN, _TOKEN, _QUOTED)
# chunk-size, then extensions: BWS is allowed around "=" and after ";" (RFC 9112 §7.1.1), but not
# between the size and the first ";" nor before the CRLF, where split parsers have disagreed.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,%d})(?:;[ \t]*%s(?:[ \t]*;[ \t]*%s)*)?\r\n\Z" % (_MAX_CHUNK_SIZE_DIGITS, _EXTENSION, _EXTENSION)
)
_TRAILER_LINE = re.compile(rb"(%s):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*)\r\n\Z" % _TOKEN)
# RFC 9110 §6.5.1: fields that frame the message or route it must not come as trailers; a peer
# that merged them into the head could be made to read another body or serve another host. The
# other fields a trailer may not carry (Content-Type, Authorization, ...) are dropped like every
# trailer: asyncwsgi never shows trailers to the app.
FORBIDDEN_TRAILERS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"te",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"host",
    }
)


class FramingRefused(ValueError):
    """The bytes break a framing rule: answer 400 and close the connection."""

    status = 400


def check_head(buf: Bytes, start: int, stop: int) -> None:
    """Refuse ``buf[start:stop]``, part of a head, if it has a bare CR or LF, obs-fold or a CTL.

    The range must not split a CRLF (``HeadScanner`` never ends one before an LF); obs-fold is
    looked for from one byte before ``start``, where the previous part ended. The test keeps
    only the head's control bytes (one C pass): a good head's are exactly its CRLFs, in pairs.
    0.9 µs for wrk's 75-byte head, 1.8 µs for a browser's 350 bytes.
    """
    part = buf[start:stop] if start or stop != len(buf) else buf
    ctls = part.translate(None, _NOT_CTL)
    pairs = ctls.count(b"\r\n")
    if (
        pairs * 2 != len(ctls)
        or part.count(b"\r\n") != pairs
        or b"\n " in part
        or b"\n\t" in part
        or (start and buf[start - 1 : start + 1] in (b"\n ", b"\n\t"))
    ):
        match = _BAD_HEAD_BYTE.search(buf, max(0, start - 1), stop)
        found = b"" if match is None else match.group()
        if found[:1] == b"\n" and len(found) == 2:
            raise FramingRefused("obs-fold (a header line starting with whitespace) is not accepted")
        detail = _HEAD_FAULTS.get(found)
        if detail is None:
            detail = f"control character {found!r} in the request head"
        raise FramingRefused(detail)


class HeadScanner:
    """Watches the bytes of one request head on their way to h11.

    ``feed`` returns the bytes to give h11 (the input less any leading empty lines) and, once the
    head's closing CRLFCRLF has been seen, the offset just past it in those bytes; then the
    scanner is done and ``source`` says where the whole head is. A fresh scanner per head.
    """

    __slots__ = ("_blank", "_end", "_pending", "_scanned", "_source", "_started")

    def __init__(self) -> None:
        self._pending: Optional[bytearray] = None  # the head so far, when it spans reads
        self._scanned = 0  # bytes of the pending head already checked
        self._blank = 0  # empty lines skipped before the request line
        self._started = False  # the request line's first byte has come
        self._source: Bytes = b""  # where the complete head is (its first _end bytes)
        self._end = -1

    def feed(self, data: Bytes) -> Tuple[Bytes, int]:
        """Check ``data``; return (bytes for h11, end of the head in them or -1). Raises FramingRefused."""
        pending = self._pending
        if not self._started:
            if pending is not None:  # a CR that may begin an empty line
                data = bytes(pending) + data
                self._pending = pending = None
            if data[:1] == b"\r":
                data = self._skip_blank_lines(data)
                if not data:
                    return data, -1
            self._started = True
        if pending is None:
            buf: Bytes = data
            start = 0
        else:
            start = len(pending)
            pending += data
            buf = pending
        end = buf.find(b"\r\n\r\n", max(0, start - 3))
        if end >= 0:
            end += 4
            check_head(buf, self._scanned, end)
            self._source, self._end, self._pending = buf, end, None
            return data, end - start
        # Incomplete: a CR at the very end may be half of a CRLF, so it waits for the next read.
        stop = len(buf) - 1 if buf[-1:] == b"\r" else len(buf)
        check_head(buf, self._scanned, stop)
        self._scanned = stop
        if pending is None:
            self._pending = bytearray(buf)
        return data, -1

    def _skip_blank_lines(self, data: Bytes) -> Bytes:
        while data[:2] == b"\r\n":
            self._blank += 1
            if self._blank > MAX_BLANK_LINES:
                raise FramingRefused(f"more than {MAX_BLANK_LINES} empty lines before the request line")
            data = data[2:]
        if data == b"\r":  # half of an empty line: the rest comes with the next read
            self._pending = bytearray(b"\r")
            return b""
        return data

    @property
    def source(self) -> Tuple[Bytes, int]:
        """Where the complete head is: its first ``end`` bytes (only after ``feed`` found its end)."""
        return self._source, self._end


# The chunked body's parts, in the order they come.
_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedChecker:
    """Follows a chunked request body's framing (RFC 9112 §7.1) alongside h11, strictly.

    ``feed`` returns -1 while the body goes on, or the offset just past its final CRLF (what
    follows is the next request's); it raises FramingRefused at the first fault. h11 still
    decodes the body; this only refuses what h11 would let through.
    """

    __slots__ = ("_line", "_remaining", "_state")

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0  # chunk data bytes still to come
        self._line = bytearray()  # a size or trailer line not yet ended

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: Bytes) -> int:
        pos = 0
        size = len(data)
        while pos < size:
            state = self._state
            if state == _DATA:
                step = min(self._remaining, size - pos)
                pos += step
                self._remaining -= step
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DATA_END:
                line = self._line
                piece = data[pos : pos + 2 - len(line)]
                line += piece
                pos += len(piece)
                if not b"\r\n".startswith(bytes(line)):
                    raise FramingRefused("chunk data not followed by CRLF")
                if len(line) == 2:
                    line.clear()
                    self._state = _SIZE
            elif state == _DONE:
                return pos
            else:  # a size line, or a trailer line
                newline = data.find(b"\n", pos)
                stop = size if newline < 0 else newline + 1
                self._line += data[pos:stop]
                pos = stop
                if len(self._line) > MAX_CHUNK_LINE_BYTES:
                    raise FramingRefused(f"chunk line over {MAX_CHUNK_LINE_BYTES} bytes")
                if newline >= 0:
                    self._end_line(bytes(self._line))
                    self._line.clear()
        return pos if self._state == _DONE else -1

    def _end_line(self, line: bytes) -> None:
        if self._state == _SIZE:
            match = _CHUNK_LINE.match(line)
            if match is None:
                raise FramingRefused(f"malformed chunk-size line {line[:64]!r}")
            self._remaining = int(match.group(1), 16)
            self._state = _DATA if self._remaining else _TRAILER
            return
        # A trailer line, or the empty line that ends the body.
        if line == b"\r\n":
            self._state = _DONE
            return
        match = _TRAILER_LINE.match(line)
        if match is None:
            raise FramingRefused(f"malformed trailer line {line[:64]!r}")
        name = match.group(1).lower()
        if name in FORBIDDEN_TRAILERS:
            raise FramingRefused(f"{name.decode('ascii')} is not allowed as a trailer field (RFC 9110 §6.5.1)")


def transfer_encoding_status(head: bytes) -> int:
    """The status for a head whose Transfer-Encoding h11 refused (it knows only ``chunked``).

    RFC 9112 §6.3: chunked applied twice, or not last, leaves the body's length unknown, which is
    malformed framing (400); a coding we do not implement before a final chunked is 501.
    """
    codings: List[bytes] = []
    for match in _TE_FIELD.finditer(head):
        codings.extend(token.strip().lower() for token in match.group(1).split(b","))
    if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") > 1 or b"" in codings:
        return 400
    return 501


def content_length_fault(head: bytes) -> Optional[str]:
    """Why the head's Content-Length is refused: repeated, or a list (RFC 9112 §6.3 lets us)."""
    values = _CL_FIELD.findall(head)
    if len(values) > 1:
        return "repeated Content-Length header"
    if values and b"," in values[0]:
        return "Content-Length is a list"
    return None


_TE_FIELD = re.compile(rb"\r\ntransfer-encoding[ \t]*:([^\r]*)", re.IGNORECASE)
_CL_FIELD = re.compile(rb"\r\ncontent-length[ \t]*:([^\r]*)", re.IGNORECASE)
