"""bridge.SocketLoan: the connection's socket lent to an app's thread for one whole response.

Over real TCP sockets on loopback: what the thread writes, what it leaves to the loop, and that
the loan ends exactly once (one close of its descriptor) whichever side ends it.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Iterator, List, Tuple

import pytest

from asyncwsgi.http.response import ResponseHead
from asyncwsgi.server.cycle.delivery import _unsent
from asyncwsgi.wsgi.bridge import Delivery, SocketLoan


class Headers:
    """The server's side of a loan: its Date line, and whether it drains."""

    draining = False

    def header_lines(self) -> Tuple[bytes, ...]:
        return (b"Date: Tue, 08 Dec 2026 01:00:00 GMT",)


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    """(server side, non-blocking as the loop keeps it; client side) of one TCP connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    server.setblocking(False)
    client.settimeout(5)
    yield server, client
    server.close()
    client.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def whole(body: bytes, length: bool = True) -> Delivery:
    headers = [(b"Content-Length", str(len(body)).encode())] if length else []
    return Delivery(ResponseHead(200, b"OK", headers), body, end=True, last=True)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "closed early"
        data += chunk
    return data


def nothing_to_read(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_the_thread_writes_the_whole_response_and_the_loop_only_counts_it(pair):
    server, client = pair
    before = open_fds()
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
    assert open_fds() == before + 1  # a descriptor of its own
    out = loan.write(whole(b"Hello, world!"), gone=False)
    assert out.written is not None and out.sent == out.written.size
    assert (out.written.status, out.written.body_bytes, out.written.closes) == (200, 13, False)
    data = read_exactly(client, out.sent)
    assert data.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nDate: Tue, 08 Dec 2026")
    assert data.endswith(b"\r\n\r\nHello, world!")
    assert loan.answered and loan.recall()  # the loop hears that it was used
    assert open_fds() == before  # closed by the thread, once


def test_a_recalled_loan_writes_nothing(pair):
    server, client = pair
    before = open_fds()
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
    assert loan.recall() is False  # the loop took it back before the thread wrote
    delivery = whole(b"late")
    assert loan.write(delivery, gone=False) is delivery  # handed to the loop as it was
    assert nothing_to_read(client)
    assert open_fds() == before and not loan.used


def test_the_connection_closing_after_it_is_said_in_the_head(pair):
    server, client = pair
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=True)
    out = loan.write(whole(b"bye"), gone=False)
    assert out.written is not None and out.written.closes
    assert b"\r\nConnection: close\r\n" in read_exactly(client, out.sent)


def test_a_head_request_gets_the_headers_and_no_body(pair):
    server, client = pair
    loan = SocketLoan(server.fileno(), Headers(), head_request=True, http11=True, close=False)
    out = loan.write(whole(b"not sent"), gone=False)
    assert out.written is not None and out.written.body_bytes == 0
    data = read_exactly(client, out.sent)
    assert data.endswith(b"\r\n\r\n") and b"Content-Length: 8" in data and b"not sent" not in data


def test_a_body_that_breaks_its_framing_is_left_to_the_loop(pair):
    server, client = pair
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
    short = Delivery(ResponseHead(200, b"OK", [(b"Content-Length", b"10")]), b"short", end=True, last=True)
    assert loan.write(short, gone=False) is short  # the loop says why and closes
    assert nothing_to_read(client)
    assert loan.recall() is False


def test_what_a_full_socket_does_not_take_is_left_to_the_loop_in_order(pair):
    server, client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    body = os.urandom(64 * 1024)
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
    out = loan.write(whole(body), gone=False)
    response = out.written
    assert response is not None and 0 < out.sent < response.size  # the socket took part of it
    assert not loan.answered  # a client leaving now did not have its answer
    rest = b"".join(bytes(piece) for piece in _unsent(response.pieces, out.sent))
    received: List[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_exactly(client, response.size)))
    reader.start()
    server.setblocking(True)
    server.sendall(rest)  # as the loop's transport would
    reader.join(5)
    assert received and received[0] == b"".join(bytes(p) for p in response.pieces)
    assert received[0].endswith(body)


def test_a_socket_full_from_the_start_leaves_the_whole_response_to_the_loop(pair):
    server, _client = pair
    try:
        while True:
            server.send(b"x" * 65536)
    except BlockingIOError:
        pass
    before = open_fds()
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
    delivery = whole(b"Hello")
    assert loan.write(delivery, gone=False) is delivery
    assert not loan.used and loan.recall() is False and open_fds() == before


def test_a_client_seen_leaving_first_was_not_answered(pair):
    server, _client = pair
    loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
    out = loan.write(whole(b"Hello"), gone=True)
    assert out.written is not None and loan.used and not loan.answered


def test_the_thread_and_the_loop_race_and_the_loan_ends_once(pair):
    """Each round, one side wins: the bytes arrive and the loop hears so, or nothing arrives and
    the thread hands the response over as it was; the descriptor is closed exactly once."""
    server, client = pair
    before = open_fds()
    outcomes = set()
    for _ in range(300):
        loan = SocketLoan(server.fileno(), Headers(), head_request=False, http11=True, close=False)
        delivery = whole(b"race")
        result: List[Delivery] = []
        start = threading.Barrier(2)

        def thread(
            loan: SocketLoan = loan,
            delivery: Delivery = delivery,
            start: threading.Barrier = start,
            result: List[Delivery] = result,
        ) -> None:
            start.wait()
            result.append(loan.write(delivery, gone=False))

        writer = threading.Thread(target=thread)
        writer.start()
        start.wait()
        used = loan.recall()
        writer.join(5)
        if used:
            assert result[0].written is not None
            read_exactly(client, result[0].sent)
        else:
            assert result[0] is delivery
            assert nothing_to_read(client)
        outcomes.add(used)
        assert open_fds() == before
    assert outcomes  # (which side wins is the scheduler's; both are checked when they come)


def test_unsent_skips_what_went_out_across_pieces():
    pieces = [b"head\r\n", b"body", b"end"]
    assert [bytes(p) for p in _unsent(pieces, 0)] == [b"head\r\n", b"body", b"end"]
    assert [bytes(p) for p in _unsent(pieces, 6)] == [b"body", b"end"]
    assert [bytes(p) for p in _unsent(pieces, 8)] == [b"dy", b"end"]
    assert [bytes(p) for p in _unsent(pieces, 13)] == []
