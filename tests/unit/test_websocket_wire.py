"""Unit tests for what the server reads of a WebSocket client itself, beside wsproto:
permessage-deflate offers (asyncwsgi/http/deflate_offer.py) and frame sizes
(asyncwsgi/http/wsframes.py)."""

from __future__ import annotations

import struct
from typing import List, Optional

import pytest

from asyncwsgi.http.deflate_offer import checked_offer
from asyncwsgi.http.wsframes import FrameSizeWatch


@pytest.mark.parametrize(
    "offer, plain",
    [
        ("permessage-deflate", "permessage-deflate"),
        ("  PerMessage-Deflate ", "permessage-deflate"),
        ("permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"),
        ("permessage-deflate;client_no_context_takeover", "permessage-deflate; client_no_context_takeover"),
        ("permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9"),
        ('permessage-deflate; server_max_window_bits = "15"', "permessage-deflate; server_max_window_bits=15"),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
        ('permessage-deflate; client_max_window_bits="8"', "permessage-deflate"),
        ("permessage-deflate; client_max_window_bits=15", "permessage-deflate"),
        ("permessage-deflate; x=1", None),
        ("permessage-deflate; server_max_window_bits", None),
        ("permessage-deflate; server_max_window_bits=8", None),
        ("permessage-deflate; server_max_window_bits=16", None),
        ("permessage-deflate; server_max_window_bits=09", None),
        ("permessage-deflate; server_max_window_bits=+9", None),
        ("permessage-deflate; client_max_window_bits=abc", None),
        ('permessage-deflate; client_max_window_bits="1 0"', None),
        ('permessage-deflate; client_max_window_bits="10', None),
        ("permessage-deflate; server_no_context_takeover=yes", None),
        ("permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover", None),
        ("permessage-deflate; ", None),
        ("permessage-deflate;;", None),
        ("x-webkit-deflate-frame", None),
        ("permessage-deflatex", None),
    ],
)
def test_offers(offer: str, plain: Optional[str]) -> None:
    assert checked_offer(offer) == plain


def frame(opcode: int, length: int, fin: bool = True, masked: bool = True) -> bytes:
    """A frame header declaring ``length`` (the payload is not included)."""
    first = (0x80 if fin else 0) | opcode
    mask = 0x80 if masked else 0
    if length < 126:
        head = bytes([first, mask | length])
    elif length < 1 << 16:
        head = bytes([first, mask | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask | 127]) + struct.pack("!Q", length)
    return head + (b"MASK" if masked else b"")


def whole(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return frame(opcode, len(payload), fin) + payload


def feed_in(watch: FrameSizeWatch, data: bytes, sizes: List[int]) -> Optional[int]:
    """Feed ``data`` in pieces of the given sizes (cycled); the offset in ``data`` of a refusal."""
    offset = 0
    index = 0
    while offset < len(data):
        piece = data[offset : offset + sizes[index % len(sizes)]]
        found = watch.feed(piece)
        if found is not None:
            return offset + found
        offset += len(piece)
        index += 1
    return None


@pytest.mark.parametrize("sizes", [[1 << 20], [1], [3], [7, 1, 13]], ids=["whole", "bytes", "threes", "mixed"])
def test_messages_within_the_limit_pass_however_they_are_read(sizes: List[int]) -> None:
    stream = (
        whole(0x1, b"a" * 100)  # exactly the limit
        + whole(0x2, b"b" * 200)  # 16-bit length
        + whole(0x1, b"c" * 60, fin=False)
        + whole(0x9, b"ping")  # a control frame between fragments is no part of the message
        + whole(0x0, b"c" * 40)
        + whole(0x8, b"\x03\xe8")
    )
    assert feed_in(FrameSizeWatch(200), stream, sizes) is None


@pytest.mark.parametrize("sizes", [[1 << 20], [1], [5]], ids=["whole", "bytes", "fives"])
def test_the_refusal_points_at_the_header_that_passes_the_limit(sizes: List[int]) -> None:
    before = whole(0x1, b"ok") + whole(0x2, b"x" * 50, fin=False) + whole(0xA, b"")
    stream = before + frame(0x0, 51) + b"y" * 10
    found = feed_in(FrameSizeWatch(100), stream, sizes)
    if sizes == [1 << 20]:
        assert found == len(before)
    else:  # read in pieces, the header began in an earlier piece: the refusal is at its piece
        assert found is not None and len(before) <= found < len(before) + len(frame(0x0, 51))


def test_a_64_bit_length_is_refused_from_its_header_alone() -> None:
    watch = FrameSizeWatch(16 * 1024 * 1024)
    assert watch.feed(frame(0x2, 1 << 40)) == 0


def test_a_new_message_starts_its_count_again() -> None:
    watch = FrameSizeWatch(100)
    for _ in range(5):
        assert watch.feed(whole(0x1, b"z" * 90)) is None


def test_unmasked_frames_are_counted_too() -> None:
    watch = FrameSizeWatch(10)
    assert watch.feed(frame(0x1, 5, masked=False) + b"12345") is None
    assert watch.feed(frame(0x1, 11, masked=False)) == 0
