"""Good clients during a storm of slow and hostile ones: asyncwsgi against its peers (issue 13).

    python benchmarks/storm.py                       # 10 s per server, 3 rounds
    python benchmarks/storm.py --seconds 5 --rounds 1 --hostile 25

Each server runs its default configuration with 8 threads (gunicorn gthread: -w 1 --threads 8;
waitress: --threads 8; asyncwsgi with --no-access-log, as neither peer logs requests by
default), pinned to CPU 0; asyncwsgi on both loops, and once with request and
response buffering off (``--request-buffer-bytes 0 --response-buffer-bytes 0``, the behaviour
before issue 13). The app is ``benchmarks.apps:storm``. On CPU 1, ``--hostile`` connections of
each kind are kept open, each reopened when the server closes it:

* stall-upload: the head of a 64 KiB POST to /upload and 8 KiB of its body, then nothing;
* zero-window: GET /download (1 MiB) with a 4 KiB receive buffer, then never read;
* half-head: half of a request head, then nothing;
* zero-window-16m: GET /download16 (16 MiB, more than any buffer in memory), never read;
* stall-upload-4m: the head of a 4 MiB POST and 2 MiB of its body (past the 1 MiB request
  buffers), then nothing;

and 4 threads loop resets mid-upload (the head of a 1 MiB POST and 256 KiB, then RST). ``--good``
good clients (8) loop GET / on fresh connections. Reported per server (median round by good
requests): good requests completed in the window, their p99, the server's RSS at the end, and
what the server holds on disk then (its open files' sizes: spool files, waitress's temporary
files). ``--kinds stall-upload --hostile 1000`` is the slow-body attack alone; ``--kinds none``
the unloaded baseline it is compared with; ``--kinds zero-window-16m,stall-upload-4m --hostile 10
--good 10 --seconds 15`` the transfers past the memory buffers (issue 25).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.reset_flood import _flood, _good, _wait_up  # noqa: E402  (after the path above)

PORT = 18331
APP = "benchmarks.apps:storm"


def servers() -> Dict[str, List[str]]:
    python = sys.executable
    ours = [python, "-m", "asyncwsgi", APP, "--port", str(PORT), "--no-access-log"]
    found = {
        "asyncwsgi (uvloop)": [*ours, "--loop", "uvloop"],
        "asyncwsgi (asyncio)": [*ours, "--loop", "asyncio"],
        "asyncwsgi, buffering and spooling off": [*ours, "--request-buffer-bytes", "0", "--response-buffer-bytes", "0"],
    }
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(python)) or shutil.which("gunicorn")
    if gunicorn:
        found["gunicorn gthread"] = [
            gunicorn, "-k", "gthread", "-w", "1", "--threads", "8", "-b", f"127.0.0.1:{PORT}", APP,
        ]  # fmt: skip
    try:
        import waitress  # noqa: F401

        found["waitress"] = [python, "-m", "waitress", "--threads", "8", f"--listen=127.0.0.1:{PORT}", APP]
    except ImportError:
        pass
    return found


def _open(kind: str) -> Optional[socket.socket]:
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if kind.startswith("zero-window"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        sock.connect(("127.0.0.1", PORT))
        if kind == "stall-upload":
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: 65536\r\n\r\n" + b"u" * 8192)
        elif kind == "stall-upload-4m":
            sock.settimeout(10)  # (2 MiB to send: the server may take a moment)
            sock.sendall(b"POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % (4 << 20))
            sock.sendall(b"u" * (2 << 20))
        elif kind == "zero-window":
            sock.sendall(b"GET /download HTTP/1.1\r\nHost: bench\r\n\r\n")
        elif kind == "zero-window-16m":
            sock.sendall(b"GET /download16 HTTP/1.1\r\nHost: bench\r\n\r\n")
        else:
            sock.sendall(b"GET /half HTTP/1.1\r\nHost: bench\r\nX-Pad")
        sock.setblocking(False)
        return sock
    except OSError:
        return None


def _closed(sock: socket.socket, kind: str) -> bool:
    """Whether the server closed it (a zero-window client never reads, so it only checks errors)."""
    if kind.startswith("zero-window"):
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
    try:
        return sock.recv(65536) == b""  # stall-upload and half-head: 408 then close, or a close
    except BlockingIOError:
        return False
    except OSError:
        return True


def _hold(stop: threading.Event, kind: str, count: int) -> None:
    held: List[Optional[socket.socket]] = [None] * count
    while not stop.is_set():
        for i, sock in enumerate(held):
            if sock is not None and _closed(sock, kind):
                sock.close()
                sock = held[i] = None
            if sock is None:
                held[i] = _open(kind)
        time.sleep(0.2)
    for sock in held:
        if sock is not None:
            sock.close()


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _disk_mib(pid: int) -> float:
    """What the server's open regular files hold now (unlinked ones too): its spool."""
    total = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                info = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and not os.readlink(f"/proc/{pid}/fd/{fd}").startswith(ROOT):
                total += info.st_size
    except OSError:
        pass
    return total / (1 << 20)


KINDS = ("stall-upload", "zero-window", "half-head", "reset", "zero-window-16m", "stall-upload-4m")


def measure(
    command: List[str], seconds: float, hostile: int, kinds: Sequence[str] = KINDS, good_clients: int = 8
) -> Dict[str, float]:
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    proc = subprocess.Popen(pin + command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(proc, PORT)
        stop = threading.Event()
        latencies: List[float] = []
        storm = [threading.Thread(target=_hold, args=(stop, kind, hostile)) for kind in kinds if kind != "reset"]
        if "reset" in kinds:
            storm += [threading.Thread(target=_flood, args=(stop, [], PORT, 0.01)) for _ in range(4)]
        for thread in storm:
            thread.start()
        time.sleep(2)  # the storm is in place before the window opens
        good = [threading.Thread(target=_good, args=(stop, latencies, PORT)) for _ in range(good_clients)]
        for thread in good:
            thread.start()
        time.sleep(seconds)
        rss = _rss_mib(proc.pid)
        disk = _disk_mib(proc.pid)
        stop.set()
        for thread in storm + good:
            thread.join(15)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
        return {"good": len(latencies), "p99_ms": p99 * 1000, "rss": rss, "disk": disk}
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hostile", type=int, default=50, help="connections of each hostile kind")
    parser.add_argument("--good", type=int, default=8, help="good clients")
    parser.add_argument("--only", help="run only servers whose name contains this")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="hostile kinds, comma-separated (none: the unloaded baseline)",
    )
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the clients on CPU 1, the server on CPU 0
    results: Dict[str, List[Dict[str, float]]] = {}
    chosen = {n: c for n, c in servers().items() if not args.only or args.only in n}
    for _ in range(args.rounds):
        for name, command in chosen.items():
            kinds = [k for k in args.kinds.split(",") if k and k != "none"]
            results.setdefault(name, []).append(measure(command, args.seconds, args.hostile, kinds, args.good))
    window = f"good requests in {args.seconds:.0f} s (all rounds)"
    print(f"| server | {window} | p99 ms | RSS MiB | disk MiB | vs waitress |")
    print("|---|---|---|---|---|---|")
    reference = results.get("waitress")
    ref_good = sorted(r["good"] for r in reference)[len(reference) // 2] if reference else 0
    for name, runs in results.items():
        mid = sorted(runs, key=lambda r: r["good"])[len(runs) // 2]
        every = ", ".join(f"{r['good']:.0f}" for r in runs)
        ratio = f"{mid['good'] / ref_good:.2f}x" if ref_good else "-"
        print(
            f"| {name} | {mid['good']:.0f} ({every}) | {mid['p99_ms']:.0f} | {mid['rss']:.0f} | {mid['disk']:.0f} "
            f"| {ratio} |"
        )


if __name__ == "__main__":
    main()
