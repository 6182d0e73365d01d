"""Static files: asyncwsgi ``--static`` against nginx, granian's static mount and WhiteNoise (issue 25).

    python benchmarks/static.py                    # 3 interleaved rounds of 10 s per cell
    python benchmarks/static.py --runs 1 --seconds 5
    python benchmarks/static.py slow               # 1,000 slow downloads beside hello world

``throughput`` (the default): a 10 KB file and a 1 MiB file, each at 64 and 256 connections
(wrk, keep-alive), from

* ``asyncwsgi --static /static=DIR`` as a user types it (uvloop where installed, the access log
  on), and the same with ``--loop asyncio``;
* nginx (C, the reference limit): one worker, ``sendfile on``, ``access_log off``;
* granian (Rust) with ``--static-path-mount``, one worker;
* WhiteNoise (a WSGI middleware, what Django and Flask sites use instead of a second server)
  under gunicorn gthread (``-w 1 --threads 8``), waitress (``--threads 8``) and asyncwsgi itself.

Every server is one process pinned to CPU 0 (nginx: its worker, with ``master_process off``);
wrk runs on CPU 1. Reported: requests/s and MiB/s, p99, peak RSS, and how many of wrk's
connections were answered (``run.ServedClients``); cells are measured in interleaved rounds and
each figure is the median round.

``slow``: hello world at 50 connections (wrk) for ``--seconds``, alone, then beside 1,000
clients each downloading the 1 MiB file at 64 KB/s (``--slow-clients``, ``--slow-rate``): hello's
throughput kept, the server's RSS before and after, and its busy threads and connections
sending files (``/stats``) while the downloads run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import (  # noqa: E402  (after the path above)
    KEEP_ALIVE,
    PeakRSS,
    Scenario,
    ServedClients,
    free_port,
    run_wrk,
    server_commands,
    stop_server,
    tree_rss_kib,
    venv_bindir,
)

FILES = {"10kb.css": 10 * 1000, "1mib.js": 1 << 20}
CELLS = [("10kb.css", 64), ("10kb.css", 256), ("1mib.js", 64), ("1mib.js", 256)]
APP = "benchmarks.static_apps:application"

Command = Callable[[Path, int], Tuple[List[str], Dict[str, str]]]


def make_files(directory: Path) -> None:
    for name, size in FILES.items():
        (directory / name).write_bytes(os.urandom(size))


def nginx_conf(directory: Path, port: int, run: Path) -> Path:
    conf = run / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
worker_processes 1;
error_log {run}/error.log warn;
pid {run}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout {KEEP_ALIVE};
    keepalive_requests 1000000;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    types {{ text/css css; application/javascript js; }}
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {directory}/; }}
        location / {{ return 200 "Hello, world!"; }}
    }}
}}
"""
    )
    return conf


def servers(bindir: Path) -> Dict[str, Command]:
    python = str(bindir / "python")
    peers = server_commands(bindir)

    def static_env(directory: Path) -> Dict[str, str]:
        return {"BENCH_STATIC_DIR": str(directory)}  # where static_apps' WhiteNoise looks

    def ours(*flags: str) -> Command:
        return lambda d, port: (
            [python, "-m", "asyncwsgi", APP, "--port", str(port), "--keep-alive", KEEP_ALIVE, *flags],
            {},
        )

    found: Dict[str, Command] = {
        "asyncwsgi --static": lambda d, port: ours("--static", f"/static={d}")(d, port),
        "asyncwsgi --static --loop asyncio": lambda d, port: ours("--static", f"/static={d}", "--loop", "asyncio")(
            d, port
        ),
        "WhiteNoise + asyncwsgi": lambda d, port: (ours()(d, port)[0], static_env(d)),
        # WhiteNoise under the peers: their commands exactly as benchmarks/run.py runs them.
        "WhiteNoise + gunicorn gthread": lambda d, port: (peers["gunicorn-gthread"](APP, port), static_env(d)),
        "WhiteNoise + waitress": lambda d, port: (peers["waitress"](APP, port), static_env(d)),
    }
    if (bindir / "granian").exists():
        # run.py's granian command, with the static mount before the app.
        found["granian --static-path-mount"] = lambda d, port: (
            [*peers["granian"](APP, port)[:-1], "--static-path-route", "/static", "--static-path-mount", str(d), APP],
            {},
        )
    if shutil.which("nginx"):
        found["nginx"] = lambda d, port: (["nginx", "-c", str(nginx_conf(d, port, d.parent))], {})
    return found


def _wait_ready(port: int, proc: subprocess.Popen, path: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not serve {path}")


def start(command: Command, directory: Path, bindir: Path) -> Tuple[subprocess.Popen, int]:
    port = free_port()
    argv, extra = command(directory, port)
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_ready(port, proc, "/static/10kb.css")
    return proc, port


def measure(command: Command, directory: Path, bindir: Path, name: str, connections: int, seconds: int) -> dict:
    proc, port = start(command, directory, bindir)
    try:
        scenario = Scenario(f"{name}-{connections}", APP, connections, "")
        path = f"/static/{name}"
        run_wrk(port, Scenario("warm", APP, 16, ""), 1, None, path)
        with PeakRSS(proc.pid) as rss, ServedClients(port, connections, seconds) as served:
            stats = run_wrk(port, scenario, seconds, None, path)
        return {
            "rps": stats["rps"],
            "mib_s": stats["rps"] * FILES[name] / (1 << 20),
            "p99": stats["p99"],
            "errors": stats["errors"],
            "rss": rss.peak / 1024,
            "served": served.served,
        }
    finally:
        stop_server(proc)


def throughput(args: argparse.Namespace, bindir: Path, directory: Path) -> None:
    chosen = {n: c for n, c in servers(bindir).items() if not args.only or args.only in n}
    results: Dict[Tuple[str, str, int], List[dict]] = {}
    for _ in range(args.runs):
        for name, connections in CELLS:
            for server, command in chosen.items():
                try:
                    result = measure(command, directory, bindir, name, connections, args.seconds)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    print(f"{server} {name} {connections}: {exc}", flush=True)
                    continue
                results.setdefault((server, name, connections), []).append(result)
                print(f"{server} {name} c{connections}: {result}", flush=True)
    for name, connections in CELLS:
        print(f"\n### {name} ({FILES[name]:,} bytes), {connections} connections\n")
        print("| server | req/s | MiB/s | p99 ms | peak RSS MiB | clients served | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for server in chosen:
            runs = results.get((server, name, connections))
            if not runs:
                continue
            mid = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
            print(
                f"| {server} | {mid['rps']:,.0f} | {mid['mib_s']:,.0f} | {mid['p99']:.1f} | {mid['rss']:.0f} "
                f"| {min(r['served'] for r in runs)} of {connections} | {mid['errors']} |"
            )
    print("\nTargets (median rounds):")
    for name, connections in CELLS:
        ours = _median(results, "asyncwsgi --static", name, connections)
        for peer, bound in (
            ("WhiteNoise + gunicorn gthread", 3.0 if name.startswith("10kb") else None),
            ("WhiteNoise + asyncwsgi", 1.5 if name.startswith("10kb") else None),
            ("nginx", 0.7 if name.startswith("1mib") else None),
        ):
            theirs = _median(results, peer, name, connections)
            if ours and theirs and bound:
                ratio = ours / theirs
                verdict = "met" if ratio >= bound else "NOT met"
                print(f"  {name} c{connections}: {ratio:.2f}x {peer} (target >= {bound}x): {verdict}")


def _median(results: Dict[Tuple[str, str, int], List[dict]], server: str, name: str, connections: int) -> float:
    runs = results.get((server, name, connections))
    return statistics.median(r["rps"] for r in runs) if runs else 0.0


# --- slow downloads beside hello world --------------------------------------------------------


async def _slow_client(port: int, path: str, rate: int, stop: asyncio.Event, done: List[int]) -> None:
    """Download ``path`` again and again, reading ``rate`` bytes a second with a small receive
    buffer. (The server's kernel takes what its socket's send buffer holds at once, up to a few
    MiB on loopback: the file then waits there, not in the server.) ``done[0]`` counts the
    downloads under way, ``done[1]`` those finished."""
    piece = max(1, rate // 8)
    while not stop.is_set():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            done[0] += 1
            try:
                while not stop.is_set():
                    data = await loop.sock_recv(sock, piece)
                    if not data:
                        done[1] += 1
                        break
                    await asyncio.sleep(len(data) / rate)
            finally:
                done[0] -= 1
        except OSError:
            await asyncio.sleep(0.1)
        finally:
            sock.close()


def _hold_slow_clients(port: int, count: int, rate: int, stop: threading.Event, done: List[int]) -> None:
    async def main() -> None:
        halt = asyncio.Event()
        tasks = [asyncio.ensure_future(_slow_client(port, "/static/1mib.js", rate, halt, done)) for _ in range(count)]
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        halt.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def _stats(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def slow(args: argparse.Namespace, bindir: Path, directory: Path) -> None:
    python = str(bindir / "python")
    hello = Scenario("hello-50", APP, 50, "")
    for label, flags in (("uvloop", []), ("asyncio", ["--loop", "asyncio"])):
        command: Command = lambda d, port, flags=flags: (  # noqa: E731
            [
                python,
                "-m",
                "asyncwsgi",
                APP,
                "--port",
                str(port),
                "--keep-alive",
                KEEP_ALIVE,
                "--static",
                f"/static={d}",
                "--stats-path",
                "/stats",
                "--max-connections",
                "5000",
                *flags,
            ],
            {},
        )
        alone: List[float] = []
        beside: List[float] = []
        samples: List[dict] = []
        rss: List[Tuple[float, float]] = []
        under_way: List[int] = []
        for _ in range(args.runs):
            proc, port = start(command, directory, bindir)
            try:
                run_wrk(port, Scenario("warm", APP, 16, ""), 1, None, "/")
                alone.append(run_wrk(port, hello, args.seconds, None, "/")["rps"])
                stop = threading.Event()
                done = [0, 0]
                holder = threading.Thread(
                    target=_hold_slow_clients, args=(port, args.slow_clients, args.slow_rate, stop, done)
                )
                holder.start()
                time.sleep(3)  # every client connected and downloading
                before = tree_rss_kib(proc.pid) / 1024
                sampler_stop = threading.Event()

                def sample(
                    port: int = port, sampler_stop: threading.Event = sampler_stop, out: List[dict] = samples
                ) -> None:
                    while not sampler_stop.wait(1.0):
                        out.append(_stats(port))

                sampler = threading.Thread(target=sample)
                sampler.start()
                under_way.append(done[0])
                beside.append(run_wrk(port, hello, args.seconds, None, "/")["rps"])
                under_way.append(done[0])
                sampler_stop.set()
                sampler.join()
                after = tree_rss_kib(proc.pid) / 1024
                rss.append((before, after))
                stop.set()
                holder.join(60)
            finally:
                stop_server(proc)
        kept = statistics.median(beside) / statistics.median(alone)
        sending = max((s["connections"].get("sending_file", 0) for s in samples), default=0)
        busy = max((s["threads"]["busy"] for s in samples), default=0)
        print(
            f"asyncwsgi ({label}): hello alone {statistics.median(alone):,.0f} req/s, beside "
            f"{args.slow_clients} downloads at {args.slow_rate // 1000} KB/s {statistics.median(beside):,.0f} req/s "
            f"({kept:.0%} kept; target >= 90%); downloads under way {min(under_way)}-{max(under_way)}; "
            f"up to {sending} connections sending files, up to {busy} "
            f"threads busy (hello's); RSS {rss[len(rss) // 2][0]:.0f} -> {rss[len(rss) // 2][1]:.0f} MiB",
            flush=True,
        )


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="throughput", choices=["throughput", "slow"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--only", help="run only servers whose name contains this")
    parser.add_argument("--slow-clients", type=int, default=1000)
    parser.add_argument("--slow-rate", type=int, default=64_000, help="bytes a second each slow client reads")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # this script and its clients on CPU 1
    bindir = venv_bindir()
    with tempfile.TemporaryDirectory(prefix="asyncwsgi-static-bench-") as tmp:
        directory = Path(tmp) / "files"
        directory.mkdir()
        make_files(directory)
        if args.mode == "slow":
            slow(args, bindir, directory)
        else:
            throughput(args, bindir, directory)


if __name__ == "__main__":
    main()
