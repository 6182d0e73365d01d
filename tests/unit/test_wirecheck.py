"""Units for ``asyncwsgi.http.wirecheck``: every verdict holds at every split of the bytes into reads."""

from __future__ import annotations

from typing import List, Optional

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncwsgi.http.wirecheck import (
    MAX_BLANK_LINES,
    ChunkedChecker,
    FramingRefused,
    HeadScanner,
    content_length_fault,
    transfer_encoding_status,
)


def splits(data: bytes) -> List[List[bytes]]:
    """``data`` whole, byte by byte, and cut in two at every point."""
    out = [[data], [data[i : i + 1] for i in range(len(data))]]
    out.extend([data[:i], data[i:]] for i in range(1, len(data)))
    return out


def scan(pieces: List[bytes]) -> Optional[bytes]:
    """Feed ``pieces``; return what h11 would get up to the head's end, or None if incomplete."""
    scanner = HeadScanner()
    given = b""
    for piece in pieces:
        checked, end = scanner.feed(piece)
        given += bytes(checked)
        if end >= 0:
            source, head_end = scanner.source
            assert bytes(source[:head_end]).endswith(b"\r\n\r\n")
            return given[: len(given) - len(checked) + end]
    return None


GOOD_HEAD = b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\tb \x80\xff\r\n\r\n"


@pytest.mark.parametrize(
    "raw,expected",
    [
        pytest.param(GOOD_HEAD + b"BODY\n", GOOD_HEAD, id="head-then-body-with-lf"),
        pytest.param(b"\r\n\r\n" + GOOD_HEAD, GOOD_HEAD, id="two-empty-lines"),
        pytest.param(b"\r\n" * MAX_BLANK_LINES + GOOD_HEAD, GOOD_HEAD, id="most-empty-lines"),
    ],
)
def test_good_heads_at_every_split(raw, expected):
    for pieces in splits(raw):
        assert scan(pieces) == expected, pieces


@pytest.mark.parametrize(
    "raw,words",
    [
        pytest.param(b"GET / HTTP/1.1\nHost: t\r\n\r\n", "bare LF", id="bare-lf"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n\n", "bare LF", id="bare-lf-end"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", "bare CR", id="bare-cr"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n x\r\n\r\n", "obs-fold", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nX: \x00\r\n\r\n", "control", id="nul"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nX: \x7f\r\n\r\n", "control", id="del"),
        pytest.param(b"\r\n" * (MAX_BLANK_LINES + 1) + GOOD_HEAD, "empty lines", id="too-many-empty-lines"),
        pytest.param(b"\n" + GOOD_HEAD, "bare LF", id="lf-empty-line"),
    ],
)
def test_bad_heads_are_refused_at_every_split(raw, words):
    for pieces in splits(raw):
        with pytest.raises(FramingRefused, match=words):
            scan(pieces)


def test_a_cr_at_the_end_of_a_read_waits_for_its_lf():
    scanner = HeadScanner()
    assert scanner.feed(b"GET / HTTP/1.1\r") == (b"GET / HTTP/1.1\r", -1)
    checked, end = scanner.feed(b"\nHost: t\r\n\r\n")
    assert end == len(checked)


def test_only_empty_lines_give_h11_nothing():
    scanner = HeadScanner()
    assert scanner.feed(b"\r\n") == (b"", -1)
    assert scanner.feed(b"\r") == (b"", -1)
    checked, end = scanner.feed(b"\n" + GOOD_HEAD)
    assert bytes(checked) == GOOD_HEAD and end == len(GOOD_HEAD)


def check_chunks(pieces: List[bytes]) -> int:
    """Feed ``pieces``; the offset past the body's end in all the bytes, or -1."""
    checker = ChunkedChecker()
    offset = 0
    for piece in pieces:
        end = checker.feed(piece)
        if end >= 0:
            return offset + end
        offset += len(piece)
    return -1


GOOD_CHUNKS = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
    b'5;a=b;c;d="q \\" t"\r\nhello\r\n0;x\r\n\r\n',
    b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other:\r\n\r\n",
    b"0000000000000005\r\nhello\r\n0\r\n\r\n",
    b"5; some; parameters=stuff\r\nhello\r\n0\r\n\r\n",  # RFC 9112 §7.1.1 BWS (gunicorn's valid/013)
    b"5;a = b ;c\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nContent-Type: text/plain\r\nVary: *\r\n\r\n",  # dropped, not refused
]


@pytest.mark.parametrize("body", GOOD_CHUNKS)
def test_good_chunked_bodies_end_at_every_split(body):
    after = b"GET / HTTP/1.1\r\n"
    for pieces in splits(body + after):
        assert check_chunks(pieces) == len(body)


BAD_CHUNKS = {
    "size-space": b"5 \r\nhello\r\n0\r\n\r\n",
    "ows-before-ext": b"5 ;a\r\nhello\r\n0\r\n\r\n",
    "ws-then-nothing": b"5; \r\nhello\r\n0\r\n\r\n",
    "ws-before-crlf": b"5;a \r\nhello\r\n0\r\n\r\n",
    "ws-before-crlf-no-ext": b"5\t\r\nhello\r\n0\r\n\r\n",
    "empty-ext": b"5;\r\nhello\r\n0\r\n\r\n",
    "bare-cr-in-ext": b"5;a\rb\r\nhello\r\n0\r\n\r\n",
    "bare-lf-size": b"5\nhello\r\n0\r\n\r\n",
    "bare-lf-after-data": b"5\r\nhello\n0\r\n\r\n",
    "no-crlf-after-data": b"5\r\nhelloXX0\r\n\r\n",
    "hex-prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "negative": b"-5\r\nhello\r\n0\r\n\r\n",
    "17-digits": b"00000000000000005\r\nhello\r\n0\r\n\r\n",
    "empty-size": b"\r\nhello\r\n0\r\n\r\n",
    "unterminated-quote": b'5;a="b\r\nhello\r\n0\r\n\r\n',
    "trailer-content-length": b"0\r\nContent-Length: 5\r\n\r\n",
    "trailer-host": b"0\r\nHost: x\r\n\r\n",
    "trailer-obs-fold": b"0\r\nX: a\r\n b\r\n\r\n",
    "trailer-bare-lf": b"0\r\nX: a\n\r\n",
    "trailer-ctl": b"0\r\nX: a\x01\r\n\r\n",
    "last-chunk-bare-lf-end": b"0\r\n\n",
}


@pytest.mark.parametrize("body", [pytest.param(b, id=k) for k, b in BAD_CHUNKS.items()])
def test_bad_chunked_bodies_are_refused_at_every_split(body):
    for pieces in splits(body):
        with pytest.raises(FramingRefused):
            check_chunks(pieces)


def test_chunk_line_length_is_bounded():
    checker = ChunkedChecker()
    for _ in range(20):
        checker.feed(b"5;" + b"a" * 100)  # 2,040 bytes of one line so far: still under the bound
    with pytest.raises(FramingRefused, match="over"):
        checker.feed(b"a" * 4096)


def h11_body(chunked: bytes) -> Optional[bytes]:
    """The body h11 decodes from ``chunked`` followed by a request, or None if it refuses."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return body
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return None
    except h11.RemoteProtocolError:
        return None


_line_bytes = st.sampled_from([b"5", b"a", b"0", b" ", b"\t", b";", b"=", b"x", b'"', b"\r", b"\n", b"\r\n", b"\\"])


@settings(max_examples=400, deadline=None)
@given(
    size_line=st.lists(_line_bytes, max_size=8).map(b"".join),
    after_data=st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"XX"]),
    last=st.lists(_line_bytes, max_size=6).map(b"".join),
)
def test_whatever_wirecheck_accepts_h11_frames_the_same_way(size_line, after_data, last):
    """Arbitrary chunk-line bytes: a body we accept ends where we say, and h11 reads the same body."""
    body = b"5" + size_line + b"hello" + after_data + b"0" + last + b"\r\n"
    stream = body + b"GET / HTTP/1.1\r\n"
    try:
        end = check_chunks([stream])
    except FramingRefused:
        return
    if end < 0:
        return  # incomplete to us: we'd wait for more bytes; nothing was dispatched
    decoded = h11_body(stream[:end])
    assert decoded == b"hello", stream[:end]


@pytest.mark.parametrize(
    "field,status",
    [
        (b"chunked", 501),  # not reached in practice: h11 accepts it
        (b"gzip, chunked", 501),
        (b"chunked, gzip", 400),
        (b"chunked, chunked", 400),
        (b"identity", 400),
        (b"gzip", 400),
        (b"chunked,", 400),
    ],
)
def test_transfer_encoding_status(field, status):
    assert transfer_encoding_status(b"POST / HTTP/1.1\r\nTransfer-Encoding: " + field + b"\r\n\r\n") == status


def test_transfer_encoding_status_reads_every_field():
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n"
    assert transfer_encoding_status(head) == 400


@pytest.mark.parametrize(
    "fields,fault",
    [
        (b"Content-Length: 5\r\n", None),
        (b"Content-Length: 5, 5\r\n", "list"),
        (b"content-length: 5\r\nContent-Length: 5\r\n", "repeated"),
        (b"X-Content-Length: 5\r\nContent-Length: 5\r\n", None),
    ],
)
def test_content_length_fault(fields, fault):
    found = content_length_fault(b"POST / HTTP/1.1\r\n" + fields + b"\r\n")
    assert (found is None) if fault is None else (found is not None and fault in found)
