"""A whole response written by the app's own thread on a socket its connection lent it
(``bridge.SocketLoan``), end to end over real sockets on both loops: when it is lent, when it is
not, and that the loop's own answers and the thread's never both reach the client."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Dict, List

import pytest

from asyncwsgi.wsgi.bridge import Delivery, SocketLoan
from tests.helpers import WAIT, Reader, connect, get, request, tls_files, wait_for

BIG = os.urandom(60 * 1024)


@pytest.fixture
def loans(monkeypatch) -> List[Dict[str, Any]]:
    """Every use of a loan: the thread that wrote, and whether its bytes went out itself."""
    seen: List[Dict[str, Any]] = []
    write = SocketLoan.write

    def recorded(self: SocketLoan, delivery: Delivery, gone: bool) -> Delivery:
        out = write(self, delivery, gone)
        seen.append(
            {
                "thread": threading.current_thread().name,
                "wrote": out is not delivery,
                "sent": out.sent,
                "size": 0 if out.written is None else out.written.size,
            }
        )
        return out

    monkeypatch.setattr(SocketLoan, "write", recorded)
    return seen


release = threading.Event()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hold":
        release.wait(WAIT)
    elif path == "/late":
        time.sleep(0.5)
    body = BIG if path == "/big" else b"Hello, world!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def test_with_nothing_else_running_the_apps_thread_writes_the_response(serve, loans):
    srv = serve(app)
    with connect(srv.port) as sock:
        reader = Reader(sock)
        for _ in range(3):  # keep-alive: each request lends the socket again
            sock.sendall(get("/"))
            response = reader.response()
            assert (response.status, response.body) == (200, b"Hello, world!")
            assert response.header(b"date") is not None and response.header(b"connection") is None
    assert wait_for(lambda: len(loans) == 3)
    assert all(loan["wrote"] and loan["sent"] == loan["size"] for loan in loans)
    assert all(loan["thread"].startswith("asyncwsgi") for loan in loans)  # a pool thread, not the loop


def test_http10_and_head_requests_are_framed_as_the_loop_would(serve, loans):
    srv = serve(app)
    old = request(srv.port, b"GET / HTTP/1.0\r\n\r\n")
    assert (old.status, old.body, old.header(b"connection")) == (200, b"Hello, world!", b"close")
    # Lent only with no other job running: wait until the loop has counted that one done.
    assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 0)
    with connect(srv.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/"))
        reader = Reader(sock)
        head = reader.response(head_request=True)
        assert (head.status, head.body, head.header(b"content-length")) == (200, b"", b"13")
        assert reader.response().body == b"Hello, world!"  # the next response is where it belongs
    assert wait_for(lambda: len(loans) == 3) and all(loan["wrote"] for loan in loans)


def test_a_response_the_socket_cannot_take_at_once_arrives_whole(serve, loans):
    srv = serve(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(WAIT)
    with sock:
        sock.connect(("127.0.0.1", srv.port))
        sock.sendall(get("/big") + get("/"))
        reader = Reader(sock)
        assert reader.response().body == BIG
        assert reader.response().body == b"Hello, world!"
    assert wait_for(lambda: len(loans) == 2) and loans[0]["wrote"]


def test_while_another_request_runs_the_loop_writes(serve, loans):
    release.clear()
    srv = serve(app)
    with connect(srv.port) as held:
        held.sendall(get("/hold"))
        assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 1)
        assert request(srv.port, get("/")).body == b"Hello, world!"
        release.set()
        assert Reader(held).response().status == 200
    assert wait_for(lambda: len(loans) == 1)
    assert loans[0]["wrote"]  # only the first request found nothing else running


def test_a_thread_finishing_after_its_504_finds_its_loan_recalled(serve, loans):
    srv = serve(app, request_timeout=0.2)
    with connect(srv.port) as sock:
        sock.sendall(get("/late"))
        reader = Reader(sock)
        assert reader.response().status == 504
        assert wait_for(lambda: len(loans) == 1)  # the app returned at 0.5 s
        assert not loans[0]["wrote"]  # the loop took the socket back before it answered 504
        assert sock.recv(100) == b""  # and nothing follows the 504


def test_over_tls_the_socket_is_never_lent(serve, loans, tmp_path):
    certfile, keyfile, context = tls_files(tmp_path)
    srv = serve(app, certfile=certfile, keyfile=keyfile)
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(get("/") + get("/"))
        reader = Reader(sock)
        assert reader.response().body == b"Hello, world!"
        assert reader.response().body == b"Hello, world!"
    assert loans == []
