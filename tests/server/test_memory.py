"""Server memory stays bounded whatever the transfer size: measured from /proc on a real process."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.proc import CLIServer

MiB = 1024 * 1024
# Growth allowed over the warmed-up baseline: socket buffers live in the kernel, so what the
# process may add is our high-water marks, a few slices in flight, and allocator noise.
BOUND_KIB = 12 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("loop", ["asyncio", "uvloop"])]


class PeakRSS:
    def __init__(self, server: CLIServer) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_kib())
            time.sleep(0.01)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _warm_up(port: int) -> None:
    """One small request of each kind, so threads, imports and buffers exist before the baseline."""
    for raw in (
        b"GET /?1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            while sock.recv(1 << 20):
                pass


def test_slow_reader_large_download_rss_bounded(loop):
    size = 200 * MiB
    with CLIServer("tests.apps.big:download", "--port", "0", "--loop", loop, "--no-access-log") as server:
        server.wait_listening()
        _warm_up(server.port)
        baseline = server.rss_kib()
        with PeakRSS(server) as rss, socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /?%d HTTP/1.1\r\nHost: t\r\n\r\n" % (size // MiB))
            received = 0
            while received < size:
                data = sock.recv(256 * 1024)
                assert data
                received += len(data)
                time.sleep(0.002)  # a reader slower than the server (about 100 MiB/s at most)
        assert received >= size
        growth = rss.peak - baseline
        print(f"download {size // MiB} MiB to a slow reader: RSS baseline {baseline} KiB, peak growth {growth} KiB")
        assert growth < BOUND_KIB, f"RSS grew {growth} KiB while serving {size // MiB} MiB"


def test_large_upload_to_slow_app_rss_bounded(loop):
    size = 200 * MiB
    with CLIServer("tests.apps.big:slow_upload", "--port", "0", "--loop", loop, "--no-access-log") as server:
        server.wait_listening()
        _warm_up(server.port)
        baseline = server.rss_kib()
        with PeakRSS(server) as rss, socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            chunk = b"u" * MiB
            for _ in range(size // MiB):
                sock.sendall(chunk)
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.endswith(str(size).encode()):
                data = sock.recv(65536)
                assert data
                reply += data
        growth = rss.peak - baseline
        print(f"upload {size // MiB} MiB to a slow app: RSS baseline {baseline} KiB, peak growth {growth} KiB")
        assert growth < BOUND_KIB, f"RSS grew {growth} KiB while receiving {size // MiB} MiB"
