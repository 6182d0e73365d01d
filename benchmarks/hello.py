"""Hello-world throughput: asyncwsgi (asyncio and uvloop) against waitress and gunicorn gthread.

Every server runs as one process with 8 threads, pinned to CPU 0 with taskset; wrk runs on
CPU 1. Each server is measured ``--runs`` times in turn (interleaved, so drift in the machine
hits all servers alike) and the median is reported, with asyncwsgi's ratio to each peer.

    python benchmarks/hello.py            # installs peers into benchmarks/.venv first
    python benchmarks/hello.py --quick    # fewer, shorter runs

This is the quick check that the core issue reports; the full suite (more scenarios, more
peers, charts) builds on it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "benchmarks" / ".venv"
PEERS = ["waitress", "gunicorn", "uvloop"]


def venv_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), *PEERS], check=True)
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def commands(python: Path, port: int) -> dict:
    bindir = python.parent
    ours = [str(python), "-m", "asyncwsgi", "benchmarks.apps:hello", "--port", str(port), "--threads", "8"]
    quiet = ["--no-access-log", "--log-level", "warning"]
    return {
        "asyncwsgi-uvloop": [*ours, "--loop", "uvloop", *quiet],
        "asyncwsgi-asyncio": [*ours, "--loop", "asyncio", *quiet],
        "waitress": [
            str(bindir / "waitress-serve"),
            "--threads=8",
            f"--listen=127.0.0.1:{port}",
            "benchmarks.apps:hello",
        ],
        "gunicorn-gthread": [
            str(bindir / "gunicorn"),
            "-k",
            "gthread",
            "--threads",
            "8",
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "benchmarks.apps:hello",
        ],
    }


def wait_ready(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not become ready")


def run_wrk(port: int, connections: int, seconds: int) -> float:
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"    wrk reported errors: {errors.group(0)}", file=sys.stderr)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def measure(cmd: list, connections: int, seconds: int, port: int) -> float:
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ready(port)
        run_wrk(port, connections, 1)  # warm-up
        return run_wrk(port, connections, seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (3 if args.quick else 10)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required (apt-get install wrk util-linux)")
    python = venv_python()
    results: dict = {}
    for run in range(runs):
        for name in commands(python, 0):
            port = free_port()
            rps = measure(commands(python, port)[name], args.connections, seconds, port)
            results.setdefault(name, []).append(rps)
            print(f"run {run + 1}/{runs} {name:20s} {rps:9.0f} req/s", flush=True)
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"\nhello world, {args.connections} connections, 8 threads, server on 1 CPU; median of {runs} x {seconds}s")
    print(f"{'server':20s} {'req/s':>9s}")
    for name, value in medians.items():
        print(f"{name:20s} {value:9.0f}")
    for ours in ("asyncwsgi-uvloop", "asyncwsgi-asyncio"):
        ratios = ", ".join(f"{medians[ours] / medians[p]:.2f}x {p}" for p in ("waitress", "gunicorn-gthread"))
        print(f"{ours}: {ratios}")
    print(f"\npython {sys.version.split()[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
