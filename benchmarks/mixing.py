"""What mounting ASGI apps beside the WSGI app costs, against uvicorn and hypercorn (issue 14).

    python benchmarks/mixing.py                       # every part: about 6 minutes
    python benchmarks/mixing.py --parts idle --websockets 2000

Three parts, each server pinned to CPU 0 and the clients (benchmarks/streams.py, wrk) to CPU 1,
as in run.py, in the shared benchmark virtualenv:

* ``idle``: memory per idle WebSocket. N clients open a WebSocket and stay silent; the server's
  RSS before and after, over the sockets that really opened. asyncwsgi (a raw ASGI app mounted
  at /a beside the WSGI hello) against uvicorn with each of its WebSocket implementations and
  hypercorn serving the same app alone.
* ``streams``: WSGI hello world at 50 connections, alone and then with 10,000 idle WebSockets
  and 2,000 server-sent event streams (one event a second each) open on the mounted app;
  throughput and p99 with them, as ratios to without. Interleaved rounds, medians.
* ``asgi-hello``: ASGI hello world at 50 connections: through asyncwsgi's mount, uvicorn (h11 and
  httptools) and hypercorn.

Every server runs in its default configuration: asyncwsgi's and uvicorn's access logs are on
(written to /dev/null), hypercorn's is off by default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import (
    ROOT,
    Scenario,
    free_port,
    run_wrk,
    stop_server,
    tree_rss_kib,
    venv_bindir,
    wait_ready,
)

ASGI_APP = "benchmarks.asgi_apps:app"
PREFIX = "/a"  # where asyncwsgi mounts it; uvicorn and hypercorn answer every path alike

Command = Callable[[int], List[str]]


def commands(bindir: Path) -> Dict[str, Command]:
    """Each server in its default configuration (access logs on where that is the default,
    written to /dev/null); only the app, the port and the implementation choices are given."""
    python = str(bindir / "python")

    def ours(loop: str) -> Command:
        return lambda port: [
            python,
            "-m",
            "asyncwsgi",
            "benchmarks.apps:hello",
            "--mount",
            f"{PREFIX}={ASGI_APP}",
            "--port",
            str(port),
            "--loop",
            loop,
        ]

    def uvicorn(extra: List[str]) -> Command:
        return lambda port: [str(bindir / "uvicorn"), ASGI_APP, "--port", str(port), *extra]

    return {
        "asyncwsgi-uvloop": ours("uvloop"),
        "asyncwsgi-asyncio": ours("asyncio"),
        "uvicorn-wsproto": uvicorn(["--ws", "wsproto"]),
        "uvicorn-websockets": uvicorn(["--ws", "websockets"]),
        "uvicorn-h11": uvicorn(["--http", "h11"]),
        "uvicorn-httptools": uvicorn(["--http", "httptools"]),
        "hypercorn": lambda port: [str(bindir / "hypercorn"), ASGI_APP, "--bind", f"127.0.0.1:{port}"],
    }


def start(command: Command) -> Tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *command(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(port, proc)
    return proc, port


def hold(bindir: Path, port: int, prefix: str, websockets: int, sse: int) -> Tuple[subprocess.Popen, Dict[str, int]]:
    """Open the streams on CPU 1; returns the holder (close its stdin to let go) and what opened."""
    holder = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            str(bindir / "python"),
            "benchmarks/streams.py",
            str(port),
            prefix,
            str(websockets),
            str(sse),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline().split()
    opened = {key: int(value) for key, value in (item.split("=") for item in line[1:])}
    return holder, opened


def release(holder: subprocess.Popen) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(60)


def part_idle(bindir: Path, count: int) -> List[str]:
    rows = ["| server | WebSockets opened | KiB per idle WebSocket |", "| --- | --- | --- |"]
    for name in ("asyncwsgi-uvloop", "asyncwsgi-asyncio", "uvicorn-wsproto", "uvicorn-websockets", "hypercorn"):
        proc, port = start(commands(bindir)[name])
        try:
            time.sleep(0.5)
            before = tree_rss_kib(proc.pid)
            holder, opened = hold(bindir, port, PREFIX, count, 0)
            time.sleep(2.0)  # let the server settle (and the first pings go out on no server here)
            after = tree_rss_kib(proc.pid)
            release(holder)
        finally:
            stop_server(proc)
        got = opened.get("websockets", 0)
        per = (after - before) / got if got else float("nan")
        rows.append(f"| {name} | {got:,} of {count:,} | {per:.1f} |")
        print(rows[-1], flush=True)
    return rows


def part_streams(bindir: Path, seconds: int, rounds: int, websockets: int, sse: int) -> List[str]:
    rows = [
        f"| server | hello req/s alone | with {websockets:,} WebSockets + {sse:,} SSE | ratio | p99 alone | p99 with "
        "| p99 ratio | streams opened |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    scenario = Scenario("hello-50", "benchmarks.apps:hello", 50, "hello")
    for name in ("asyncwsgi-uvloop", "asyncwsgi-asyncio"):
        proc, port = start(commands(bindir)[name])
        alone: List[Dict[str, float]] = []
        loaded: List[Dict[str, float]] = []
        opened: Dict[str, int] = {}
        try:
            for _ in range(rounds):
                alone.append(run_wrk(port, scenario, seconds, None))
                holder, opened = hold(bindir, port, PREFIX, websockets, sse)
                try:
                    loaded.append(run_wrk(port, scenario, seconds, None))
                finally:
                    release(holder)
                time.sleep(5)  # the server closes 12,000 connections: not during the next run
        finally:
            stop_server(proc)
        a_rps = statistics.median(r["rps"] for r in alone)
        l_rps = statistics.median(r["rps"] for r in loaded)
        a_p99 = statistics.median(r["p99"] for r in alone)
        l_p99 = statistics.median(r["p99"] for r in loaded)
        errors = sum(r["errors"] for r in alone + loaded)
        rows.append(
            f"| {name} | {a_rps:,.0f} | {l_rps:,.0f} | {l_rps / a_rps:.2f} | {a_p99:.2f} ms | {l_p99:.2f} ms "
            f"| {l_p99 / a_p99:.2f} | {opened.get('websockets', 0):,} WS, {opened.get('sse', 0):,} SSE"
            + (f" ({errors:.0f} wrk errors)" if errors else "")
            + " |"
        )
        print(rows[-1], flush=True)
    return rows


def part_asgi_hello(bindir: Path, seconds: int, rounds: int) -> List[str]:
    names = ["asyncwsgi-uvloop", "asyncwsgi-asyncio", "uvicorn-h11", "uvicorn-httptools", "hypercorn"]
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name in names}
    scenario = Scenario("asgi-hello-50", ASGI_APP, 50, "ASGI hello")
    for _ in range(rounds):
        for name in names:
            proc, port = start(commands(bindir)[name])
            try:
                results[name].append(run_wrk(port, scenario, seconds, None, PREFIX + "/hello"))
            finally:
                stop_server(proc)
    rows = ["| server | ASGI hello req/s, 50 connections | p99 | asyncwsgi-uvloop is |", "| --- | --- | --- | --- |"]
    ours = statistics.median(r["rps"] for r in results["asyncwsgi-uvloop"])
    for name in names:
        rps = statistics.median(r["rps"] for r in results[name])
        p99 = statistics.median(r["p99"] for r in results[name])
        rows.append(f"| {name} | {rps:,.0f} | {p99:.2f} ms | {ours / rps:.2f}x |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="idle,streams,asgi-hello")
    parser.add_argument("--websockets", type=int, default=10_000)
    parser.add_argument("--sse", type=int, default=2_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.chdir(ROOT)
    bindir = venv_bindir()
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", "wsproto", "websockets"], check=True)
    out: List[str] = []
    parts = args.parts.split(",")
    if "idle" in parts:
        out += ["### Memory per idle WebSocket", "", *part_idle(bindir, args.websockets), ""]
    if "streams" in parts:
        out += ["### WSGI hello world with WebSockets and SSE streams open", ""]
        out += [*part_streams(bindir, args.seconds, args.rounds, args.websockets, args.sse), ""]
    if "asgi-hello" in parts:
        out += ["### ASGI hello world", "", *part_asgi_hello(bindir, args.seconds, args.rounds), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
