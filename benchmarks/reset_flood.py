"""Good clients during a flood of uploads that reset midway: asyncwsgi against its peers (issue 15).

    python benchmarks/reset_flood.py                       # 10 s per server, 2 rounds
    python benchmarks/reset_flood.py --seconds 5 --rounds 1

Each server runs in its default configuration with 8 threads (gunicorn gthread: -w 1 --threads
8; waitress where installed), pinned to CPU 0. On CPU 1, 8 flooder threads loop: connect, send
the head of a 1 MiB POST to the upload app and 256 KiB of its body, then reset (SO_LINGER 0);
8 good clients loop GET requests on fresh connections. Reported: good requests completed,
their p99, flood connections made, and the server's open file descriptors at the end of the
flood (its live clients are 16 at most). Every server's count is also given as a ratio to
asyncwsgi's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 18321


def servers() -> Dict[str, List[str]]:
    python = sys.executable
    found = {
        "asyncwsgi": [python, "-m", "asyncwsgi", "benchmarks.apps:hello_or_upload", "--port", str(PORT)],
    }
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(python)) or shutil.which("gunicorn")
    if gunicorn:
        found["gunicorn-gthread"] = [
            gunicorn, "-k", "gthread", "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{PORT}",
            "benchmarks.apps:hello_or_upload",
        ]  # fmt: skip
    try:
        import waitress  # noqa: F401

        found["waitress"] = [
            python, "-m", "waitress", "--threads", "8", f"--listen=127.0.0.1:{PORT}",
            "benchmarks.apps:hello_or_upload",
        ]  # fmt: skip
    except ImportError:
        pass
    return found


def _wait_up(proc: subprocess.Popen, port: int = PORT) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _good(stop: threading.Event, latencies: List[float], port: int = PORT) -> None:
    """Loop GET / on fresh connections; record each 200's latency."""
    request = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request)
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200") and not stop.is_set():
                latencies.append(time.monotonic() - started)
        except OSError:
            pass


def _flood(stop: threading.Event, made: List[int], port: int = PORT, pause: float = 0.0) -> None:
    """Loop: the head of a 1 MiB POST and 256 KiB of it, then a reset; ``pause`` between."""
    head = b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % (1 << 20)
    part = b"x" * (256 * 1024)
    while not stop.is_set():
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            continue
        try:
            sock.setblocking(False)
            try:
                sock.sendall(head + part)
            except (BlockingIOError, OSError):
                pass
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            sock.close()
        made.append(1)
        if pause:
            time.sleep(pause)


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def measure(name: str, command: List[str], seconds: float) -> Dict[str, float]:
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    proc = subprocess.Popen(pin + command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(proc)
        stop = threading.Event()
        latencies: List[float] = []
        made: List[int] = []
        threads = [threading.Thread(target=_good, args=(stop, latencies)) for _ in range(8)]
        threads += [threading.Thread(target=_flood, args=(stop, made)) for _ in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        fds = _fds(proc.pid)
        stop.set()
        for thread in threads:
            thread.join(15)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
        return {"good": len(latencies), "p99_ms": p99 * 1000, "flood": len(made), "fds": fds}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    results: Dict[str, List[Dict[str, float]]] = {}
    for _ in range(args.rounds):
        for name, command in servers().items():
            results.setdefault(name, []).append(measure(name, command, args.seconds))
    print(f"| server | good requests in {args.seconds:.0f} s | p99 ms | flood connections | open fds | vs asyncwsgi |")
    print("|---|---|---|---|---|---|")
    ours = sorted(r["good"] for r in results["asyncwsgi"])[len(results["asyncwsgi"]) // 2]
    for name, runs in results.items():
        mid = sorted(runs, key=lambda r: r["good"])[len(runs) // 2]
        ratio = ours / mid["good"] if mid["good"] else float("inf")
        print(
            f"| {name} | {mid['good']:.0f} | {mid['p99_ms']:.1f} | {mid['flood']:.0f} | {mid['fds']:.0f} |"
            f" {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
