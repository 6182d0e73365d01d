"""Content-Length bodies past h11's buffer (asyncwsgi.http.direct_body): units, an equivalence
property against h11 alone, and the server end to end."""

from __future__ import annotations

import hashlib
import threading
from typing import Any, List, Tuple

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncwsgi.config import Config
from asyncwsgi.http import direct_body
from tests.harness import fake_connection, until
from tests.helpers import WAIT, Reader, connect, get


def in_body(length: int, head_extra: bytes = b"") -> h11.Connection:
    """A parser that has read a POST's head and nothing of its body."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n" % (length, head_extra))
    assert type(conn.next_event()) is h11.Request
    return conn


def test_the_installed_h11_supports_the_direct_path():
    # If this fails, h11 changed the internals direct_body relies on: uploads still work, through
    # h11's buffer, but about 30% slower. Adapt direct_body to the new h11.
    assert direct_body.ENABLED


def test_body_bytes_are_passed_on_as_the_same_object():
    conn = in_body(10)
    data = b"hello"
    body, rest, complete = direct_body.take(conn, data)  # type: ignore[misc]
    assert body is data and rest == b""  # not copied
    assert not complete
    assert conn.next_event() is h11.NEED_DATA  # h11 saw nothing, and knows 5 bytes remain
    body, rest, complete = direct_body.take(conn, b"world")  # type: ignore[misc]
    assert (body, rest) == (b"world", b"") and complete
    assert type(conn.next_event()) is h11.EndOfMessage
    assert conn.their_state is h11.DONE


def test_bytes_after_the_body_are_left_for_h11():
    conn = in_body(3)
    after = b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    body, rest, complete = direct_body.take(conn, b"abc" + after)  # type: ignore[misc]
    assert (body, rest) == (b"abc", after) and complete
    conn.receive_data(rest)
    assert type(conn.next_event()) is h11.EndOfMessage
    assert conn.next_event() is h11.PAUSED
    assert conn.trailing_data == (after, False)


def test_bytes_h11_already_holds_keep_the_slow_path():
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhel")
    assert type(conn.next_event()) is h11.Request
    # "hel" is still in h11's buffer: bytes read later must queue behind it.
    assert direct_body.take(conn, b"lo") is None


def test_chunked_bodies_and_bodiless_requests_keep_the_slow_path():
    chunked = h11.Connection(h11.SERVER)
    chunked.receive_data(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunked.next_event()
    assert direct_body.take(chunked, b"5\r\nhello\r\n") is None
    bodiless = h11.Connection(h11.SERVER)
    bodiless.receive_data(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    bodiless.next_event()
    assert direct_body.take(bodiless, b"GET / HTTP/1.1\r\n") is None
    complete = in_body(2)
    assert direct_body.take(complete, b"ok") == (b"ok", b"", True)
    assert direct_body.take(complete, b"GET") is None  # the body is whole: h11's again


def test_body_bytes_end_the_wait_for_100_continue():
    conn = in_body(4, b"Expect: 100-continue\r\n")
    assert conn.they_are_waiting_for_100_continue
    direct_body.take(conn, b"ab")
    assert not conn.they_are_waiting_for_100_continue  # as h11's own Data event would


def test_eof_before_the_end_of_the_body_is_still_h11s_error():
    conn = in_body(10)
    direct_body.take(conn, b"abc")
    conn.receive_data(b"")
    with pytest.raises(h11.RemoteProtocolError, match=r"received 3 bytes, expected 10"):
        conn.next_event()


# --- the same events with and without the direct path ---------------------------------------


def parse(stream_reads: List[bytes], direct: bool) -> List[Tuple[Any, ...]]:
    """Drive parsers the way the protocol does (a fresh one per request) over ``stream_reads``;
    return the requests, their bodies (joined) and their ends."""
    out: List[Tuple[Any, ...]] = []
    conn = h11.Connection(h11.SERVER)
    body = bytearray()

    def drain() -> bool:
        nonlocal conn
        while True:
            event = conn.next_event()
            if type(event) is h11.Request:
                out.append(("request", event.target))
            elif type(event) is h11.Data:
                body.extend(event.data)
            elif type(event) is h11.EndOfMessage:
                out.append(("body", bytes(body)))
                body.clear()
                buffered, _ = conn.trailing_data
                conn = h11.Connection(h11.SERVER)
                if buffered:  # (empty data would mean EOF)
                    conn.receive_data(buffered)
            else:
                return event is h11.NEED_DATA

    for data in stream_reads:
        if direct:
            split = direct_body.take(conn, data)
            if split is not None:
                body.extend(split[0])
                data = split[1]
                if not split[2]:
                    continue
        if data:
            conn.receive_data(data)
        drain()
    return out


def sized(body: bytes) -> bytes:
    return b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def chunked(body: bytes) -> bytes:
    return b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        len(body),
        body,
    )


requests = st.lists(
    st.one_of(
        st.binary(max_size=300).map(sized),
        st.just(b"GET /g HTTP/1.1\r\nHost: t\r\n\r\n"),
        st.binary(min_size=1, max_size=50).map(chunked),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(requests, st.lists(st.integers(min_value=1, max_value=400), max_size=30))
def test_any_split_of_any_pipeline_parses_the_same_as_through_h11(pipeline, cuts):
    stream = b"".join(pipeline)
    reads, at = [], 0
    for size in cuts:
        if at >= len(stream):
            break
        reads.append(stream[at : at + size])
        at += size
    if at < len(stream):
        reads.append(stream[at:])
    expected = parse(reads, direct=False)
    assert len([e for e in expected if e[0] == "body"]) == len(pipeline)
    assert parse(reads, direct=True) == expected


# --- the server, end to end -------------------------------------------------------------------


def digest_app(environ: dict, start_response: Any) -> List[bytes]:
    """Reads its body in 1000-byte reads and answers with its length and sha256."""
    stream = environ["wsgi.input"]
    digest, size = hashlib.sha256(), 0
    while True:
        chunk = stream.read(1000)
        if not chunk:
            break
        assert type(chunk) is bytes  # PEP 3333: bytes, never a view or bytearray
        digest.update(chunk)
        size += len(chunk)
    body = f"{size} {digest.hexdigest()}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def direct_counter(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """Body bytes the server passed on through the direct path."""
    counted: List[int] = []
    take = direct_body.take

    def counting(conn: h11.Connection, data: bytes) -> Any:
        split = take(conn, data)
        if split is not None:
            counted.append(len(split[0]))
        return split

    monkeypatch.setattr(direct_body, "take", counting)
    return counted


def test_upload_in_many_reads_with_a_request_pipelined_behind_it(serve, direct_counter):
    started = threading.Event()

    def app(environ: dict, start_response: Any) -> List[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            started.set()
        return digest_app(environ, start_response)

    payload = bytes(range(256)) * 400  # 102,400 bytes
    srv = serve(app, request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload))
        assert started.wait(WAIT)  # the head is parsed: later reads are body-only
        sock.sendall(payload[:1])
        sock.sendall(payload[1:50_000])
        sock.sendall(payload[50_000:-7])
        sock.sendall(payload[-7:] + get("/after"))  # the body's tail and the next request at once
        reader = Reader(sock)
        first, second = reader.response(), reader.response()
    assert first.body == f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode()
    assert second.status == 200 and second.body == f"0 {hashlib.sha256().hexdigest()}".encode()
    assert sum(direct_counter) == len(payload)  # every byte of it took the direct path


def test_unread_body_sent_after_the_response_is_drained_and_the_connection_reused(serve, direct_counter):
    def app(environ: dict, start_response: Any) -> List[bytes]:
        start_response("200 OK", [("Content-Length", "7")])
        return [b"ignored"]  # without reading wsgi.input

    srv = serve(app, request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 30000\r\n\r\n")
        reader = Reader(sock)
        assert reader.response().body == b"ignored"
        sock.sendall(b"x" * 20_000)
        sock.sendall(b"x" * 10_000 + get())
        assert reader.response().body == b"ignored"  # same connection, next request
    assert sum(direct_counter) == 30_000


@pytest.mark.asyncio
async def test_a_body_in_the_same_read_as_its_head_takes_the_direct_path(direct_counter):
    """Head and 64 KiB of body in one read: h11 parses the head alone and the body skips its
    buffer; a small body behind its head stays with h11 (not worth the split)."""

    payload = bytes(range(256)) * 256  # 65,536 bytes
    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload)
    async with fake_connection(digest_app, Config(access_log=False)) as (protocol, transport, _):
        protocol.data_received(head + payload)
        assert await until(lambda: b"\r\n\r\n" in bytes(transport.out))
        assert f"{len(payload)} {hashlib.sha256(payload).hexdigest()}".encode() in bytes(transport.out)
    assert sum(direct_counter) == len(payload)
    direct_counter.clear()
    small = b"tiny"
    async with fake_connection(digest_app, Config(access_log=False)) as (protocol, transport, _):
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n" + small)
        assert await until(lambda: hashlib.sha256(small).hexdigest().encode() in bytes(transport.out))
    assert direct_counter == []


@pytest.mark.asyncio
async def test_a_body_that_came_with_its_head_reads_by_line_and_by_size():
    """That body reaches wsgi.input as a view of the read: readline, read(n) and iteration all
    give bytes, the same bytes."""
    lines = [b"line %d\n" % i for i in range(2000)]
    payload = b"".join(lines)
    seen: List[Any] = []

    def app(environ: dict, start_response: Any) -> List[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        chunk = stream.read(100)
        rest = b"".join(stream)
        seen.extend([type(first), type(chunk), first + chunk + rest])
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    head = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(payload)
    async with fake_connection(app, Config(access_log=False)) as (protocol, transport, _):
        protocol.data_received(head + payload)
        assert await until(lambda: bytes(transport.out).endswith(b"ok"))
    assert seen == [bytes, bytes, payload]
