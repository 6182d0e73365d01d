"""A full disk under spooling: the server logs it, counts it, and serves on as without a spool.

The disk is "full" for the server process alone: RLIMIT_FSIZE makes any write past 1 MiB in a
file fail with EFBIG (Python ignores SIGXFSZ, so the write fails instead of killing it), as a
write to a full file system fails with ENOSPC.
"""

from __future__ import annotations

import hashlib
import json
import resource
import socket

import pytest

from tests.apps.basic import pattern
from tests.helpers import Reader, connect, get, request, wait_for
from tests.proc import WAIT, CLIServer

MiB = 1024 * 1024


def _one_mib_files() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_disk_that_fails_costs_threads_never_a_request(loop):
    args: tuple[str, ...] = ("tests.apps.basic:upload_or_download", "--port", "0", "--loop", loop, "--threads", "2")
    args += ("--request-buffer-bytes", "65536", "--stats-path", "/stats", "--no-access-log")
    with CLIServer(*args, preexec=_one_mib_files) as server:
        server.wait_listening()
        body = pattern(3 * MiB)
        with connect(server.port) as sock:  # spooled past 64 KiB, until the write past 1 MiB fails
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            answer = Reader(sock).response().body
        assert answer == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()

        with socket.socket() as slow:  # a response read only later: spooled until 1 MiB, then it waits
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            slow.settimeout(WAIT)
            slow.connect(("127.0.0.1", server.port))
            slow.sendall(get(f"/?{16 * MiB}"))
            assert wait_for(lambda: json.loads(request(server.port, get("/stats")).body)["spool"]["errors"] >= 2)
            assert Reader(slow).response().body == pattern(16 * MiB)

        spool = json.loads(request(server.port, get("/stats")).body)["spool"]
        assert spool["files"] == 0 and spool["bytes"] == 0
        assert server.proc.poll() is None
    assert "spool file write failed" in server.output()
    assert "File too large" in server.output()
