"""--interrupt-on-timeout end to end, in a server process of its own: the test suite runs under
coverage's tracer, and while a tracer is set the server interrupts nothing (wsgi/interrupt.py)."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from tests.helpers import Reader, get, wait_for
from tests.proc import WAIT, CLIServer

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 13), reason="--interrupt-on-timeout refused here")


def _status(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(get(path))
        return Reader(sock).response().status


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_pure_python_loop_is_interrupted_and_its_thread_serves_again(loop):
    server = CLIServer(
        "tests.apps.basic:spin_or_ok", "--port", "0", "--loop", loop, "--threads", "1", "--spare-threads", "0",
        "--request-timeout", "0.3", "--interrupt-on-timeout", "--no-access-log",
    )  # fmt: skip
    with server:
        server.wait_listening()
        assert _status(server.port, "/spin") == 504
        began = time.monotonic()
        assert _status(server.port, "/") == 200  # the one thread is back (the loop spins 30 s)
        assert time.monotonic() - began < 5
        # (logged before the thread is free, but read from the pipe by another thread)
        assert wait_for(lambda: "GET /spin interrupted at --request-timeout" in server.output())
        server.signal()
        assert server.wait() == 0


def test_the_command_refuses_it_without_a_deadline():
    server = CLIServer("tests.apps.basic:spin_or_ok", "--port", "0", "--interrupt-on-timeout")
    with server:
        assert server.wait() != 0
    assert "--interrupt-on-timeout needs --request-timeout" in server.output()
