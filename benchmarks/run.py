"""The benchmark suite: asyncwsgi against the WSGI servers people use, in one run, as ratios.

    python benchmarks/run.py                 # full run (installs peers into benchmarks/.venv)
    python benchmarks/run.py --quick         # one short run per cell: a few minutes
    python benchmarks/run.py --servers asyncwsgi,waitress --scenarios hello-50

Every server is one process with 8 threads (where it has threads), pinned to CPU 0 with taskset;
wrk (and the idle-connection holder) run on CPU 1. Cells are measured in interleaved rounds and
the median of the rounds is reported, so drift in a shared machine hits every server alike.
Writes docs/benchmarks.md and docs/img/bench-*.png (matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
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
VENV = ROOT / "benchmarks" / ".venv"
PEERS = [
    "waitress",
    "gunicorn",
    "cheroot",
    "uvicorn",
    "httptools",
    "a2wsgi",
    "hypercorn",
    "uvloop",
    "flask",
    "django",
    "matplotlib",
    "gevent",
    "whitenoise",  # (benchmarks/static.py)
]
# Compiled servers, reference points rather than peers: a row where they install (bjoern needs
# libev's headers: apt-get install libev-dev).
OPTIONAL_PEERS = ["granian", "bjoern", "pyuwsgi"]
# Rows whose Python package has another name.
_PACKAGE_OF = {"uwsgi": "pyuwsgi"}
# The pure-Python peers: "the best pure-Python peer" is the best of these (uWSGI, granian and
# bjoern are compiled).
PURE_PYTHON_PEERS = [
    "waitress",
    "cheroot",
    "gunicorn-gthread",
    "gunicorn-gevent",
    "uvicorn-a2wsgi-h11",
    "uvicorn-a2wsgi-httptools",
    "hypercorn",
]
# The headline row: the command as a new user types it, no tuning flags (the loop is "auto",
# which picks uvloop where installed, and the access log is on). Variants are labelled rows.
OURS = "asyncwsgi"
KEEP_ALIVE = "600"  # long enough that no server drops idle connections mid-measurement


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    app: str  # module:attr
    connections: int
    description: str
    unit: str = "req/s"
    idle: int = 0  # idle keep-alive connections held open during the run
    workers: int = 1  # processes per server: above 1, servers and wrk share both CPUs
    upload_bytes: int = 0
    mib_per_request: float = 0.0  # for MiB/s: bytes moved per request, in MiB
    path: str = "/"


_PAGE = "{} page: a 9 KB template of 50 rows after 2 ms of simulated database time, {} connections"

SCENARIOS = [
    Scenario("hello-1", "benchmarks.apps:hello", 1, "hello world, 1 connection"),
    Scenario("hello-50", "benchmarks.apps:hello", 50, "hello world, 50 connections"),
    Scenario("hello-256", "benchmarks.apps:hello", 256, "hello world, 256 connections"),
    Scenario("hello-50-idle-5000", "benchmarks.apps:hello", 50, "hello world, 50 connections, 5000 idle", idle=5000),
    Scenario(
        "download-1mib",
        "benchmarks.apps:download",
        16,
        "1 MiB download with Content-Length, 16 connections",
        "MiB/s",
        mib_per_request=1.0,
    ),
    Scenario(
        "stream-1mib",
        "benchmarks.apps:stream",
        16,
        "1 MiB streamed as 16 yields of 64 KiB, no Content-Length, 16 connections",
        "MiB/s",
        mib_per_request=1.0,
    ),
    Scenario(
        "upload-1mib",
        "benchmarks.apps:upload",
        16,
        "1 MiB upload, 16 connections",
        "MiB/s",
        upload_bytes=1 << 20,
        mib_per_request=1.0,
    ),
    Scenario("blocking-10ms", "benchmarks.apps:blocking", 64, "app blocks 10 ms, 64 connections (ideal 800 req/s)"),
    Scenario("flask-json", "benchmarks.flask_app:app", 50, "Flask JSON view, 50 connections"),
    Scenario(
        "hello-50-workers-2",
        "benchmarks.apps:hello",
        50,
        "hello world, 50 connections, 2 worker processes (servers and wrk share both CPUs)",
        workers=2,
    ),
    Scenario("django-json", "benchmarks.django_app:app", 50, "Django JSON view, 50 connections"),
    Scenario("flask-page-64", "benchmarks.flask_app:app", 64, _PAGE.format("Flask", 64), path="/page"),
    Scenario("flask-page-256", "benchmarks.flask_app:app", 256, _PAGE.format("Flask", 256), path="/page"),
    Scenario("django-page-64", "benchmarks.django_app:app", 64, _PAGE.format("Django", 64), path="/page"),
    Scenario("django-page-256", "benchmarks.django_app:app", 256, _PAGE.format("Django", 256), path="/page"),
]


def server_commands(bindir: Path) -> Dict[str, Callable[[str, int], List[str]]]:
    python = str(bindir / "python")

    def ours(*flags: str) -> Callable[[str, int], List[str]]:
        # --keep-alive is the scenario's, as for every server (KEEP_ALIVE); nothing else is set.
        return lambda app, port: [
            python,
            "-m",
            "asyncwsgi",
            app,
            "--port",
            str(port),
            "--keep-alive",
            KEEP_ALIVE,
            *flags,
        ]

    def uvicorn(http: str) -> Callable[[str, int], List[str]]:
        return lambda app, port: [
            str(bindir / "uvicorn"),
            "--factory",
            "benchmarks.asgi:make",
            "--port",
            str(port),
            "--http",
            http,
            "--timeout-keep-alive",
            KEEP_ALIVE,
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def gunicorn(worker: str, *flags: str) -> Callable[[str, int], List[str]]:
        # One worker process (-w, changed by with_workers), connections raised like the others'.
        return lambda app, port: [
            str(bindir / "gunicorn"),
            "-k",
            worker,
            *flags,
            "-w",
            "1",
            "--worker-connections",
            "10000",
            "--keep-alive",
            KEEP_ALIVE,
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            app,
        ]

    return {
        OURS: ours(),
        "asyncwsgi --loop asyncio": ours("--loop", "asyncio"),
        "asyncwsgi --no-access-log": ours("--no-access-log"),
        "waitress": lambda app, port: [
            str(bindir / "waitress-serve"),
            "--threads=8",
            f"--listen=127.0.0.1:{port}",
            "--connection-limit=10000",
            f"--channel-timeout={KEEP_ALIVE}",
            "--asyncore-use-poll",
            app,
        ],
        "gunicorn-gthread": gunicorn("gthread", "--threads", "8"),
        "gunicorn-gevent": gunicorn("gevent"),
        "uwsgi": lambda app, port: [
            str(bindir / "uwsgi"),
            "--http11-socket",
            f"127.0.0.1:{port}",
            "--module",
            app,
            "--processes",
            "1",
            "--threads",
            "8",
            "--master",
            "--listen",
            "1024",
            "--disable-logging",  # its per-request log, which the uWSGI docs turn off for speed
            "--http-auto-chunked",  # a response without Content-Length is chunked, not closed
            "--so-keepalive",
            "--die-on-term",
        ],
        "cheroot": lambda app, port: [
            str(bindir / "cheroot"),
            "--bind",
            f"127.0.0.1:{port}",
            "--threads",
            "8",
            "--timeout",
            KEEP_ALIVE,
            "--request-queue-size",
            "2048",
            app,
        ],
        "uvicorn-a2wsgi-h11": uvicorn("h11"),
        "uvicorn-a2wsgi-httptools": uvicorn("httptools"),
        "hypercorn": lambda app, port: [
            str(bindir / "hypercorn"),
            "-b",
            f"127.0.0.1:{port}",
            "--keep-alive",
            KEEP_ALIVE,
            "--log-level",
            "warning",
            app,
        ],
        "granian": lambda app, port: [
            str(bindir / "granian"),
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--blocking-threads",
            "8",
            "--http",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
            "--backlog",
            "2048",
            app,
        ],
        "bjoern": lambda app, port: [python, str(ROOT / "benchmarks" / "bjoern_run.py"), app, str(port)],
    }


@dataclasses.dataclass
class Result:
    value: float  # req/s or MiB/s
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_mib: float
    rss_per_idle_kib: Optional[float] = None
    served: int = 0  # of the load generator's connections, how many had a response
    connections: int = 0  # the load generator's connections at the end of the run
    switches_per_request: Optional[float] = None  # the server's context switches (perf), per request
    requests_per_cpu_second: Optional[float] = None  # requests over the server's CPU time during the run


def venv_bindir() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), *PEERS], check=True)
    for optional in OPTIONAL_PEERS:
        if subprocess.run([str(python), "-m", "pip", "install", "-q", optional], capture_output=True).returncode:
            print(f"({optional} does not install here; its rows are skipped)", flush=True)
    return python.parent


def installed(bindir: Path, name: str) -> bool:
    module = _PACKAGE_OF.get(name, name.split()[0])
    if module not in OPTIONAL_PEERS:
        return True
    return subprocess.run([str(bindir / "python"), "-c", f"import {module}"], capture_output=True).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 "):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not become ready")


def stop_server(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def tree_pids(pid: int) -> List[int]:
    """A process and its live descendants (gunicorn's worker is a child of its arbiter; our
    workers are children of the supervisor)."""
    found: List[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    pending.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its descendants."""
    total = 0
    for current in tree_pids(pid):
        try:
            with open(f"/proc/{current}/status") as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by a process and its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for current in tree_pids(pid):
        try:
            with open(f"/proc/{current}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakRSS:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_kib(self.pid))
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


class ContextSwitches:
    """The server's context switches while wrk runs (``perf stat -e context-switches`` on every
    thread of its processes), for the switches-per-request column of one-connection scenarios.
    None where perf cannot count them."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.proc: Optional[subprocess.Popen[str]] = None

    def start(self) -> None:
        if shutil.which("perf") is None:
            return
        pids = ",".join(str(p) for p in tree_pids(self.pid))
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", "context-switches", "-p", pids],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.2)  # attached before the load starts

    def stop(self) -> Optional[float]:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        for line in err.splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2] == "context-switches" and fields[0].isdigit():
                return float(fields[0])
        return None


class ServedClients:
    """How many of wrk's connections had at least one response, read from the kernel.

    Once a second during the run, ``ss`` lists wrk's sockets to the server with their
    ``bytes_received``. A socket counts as served if any sample saw bytes on it; the figure is
    the served sockets (capped at wrk's connection count, since wrk opens a new socket when a
    server closes one) out of wrk's connections. A thread-per-connection server answers only as
    many connections as it has threads; the others sit unanswered (accepted by the kernel, or by
    the server and never read) with nothing received, which a throughput figure alone hides.
    """

    def __init__(self, port: int, connections: int, seconds: float) -> None:
        self.port = port
        self.connections = connections
        self._seconds = seconds
        self._seen: Dict[str, bool] = {}  # wrk's local address: had bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def served(self) -> int:
        return min(self.connections, sum(self._seen.values()))

    def _run(self) -> None:
        deadline = time.monotonic() + self._seconds - 0.3
        while not self._stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            self._sample()
            if time.monotonic() >= deadline:
                return

    def _sample(self) -> None:
        out = subprocess.run(
            ["ss", "-tniH", "-p", "state", "established", f"( dport = :{self.port} )"],
            capture_output=True,
            text=True,
        ).stdout
        # Each socket is two lines: the addresses and owner, then its TCP info (which leaves
        # bytes_received out while it is 0).
        lines = out.splitlines()
        for head, info in zip(lines[::2], lines[1::2], strict=False):
            if '"wrk"' not in head:
                continue  # the idle-connection holder's sockets
            local = head.split()[2]
            received = re.search(r"bytes_received:(\d+)", info)
            self._seen[local] = self._seen.get(local, False) or bool(received and int(received.group(1)))

    def __enter__(self) -> ServedClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(port: int, scenario: Scenario, seconds: int, script: Optional[str], path: str = "/") -> Dict[str, float]:
    cmd = [
        "taskset",
        "-c",
        "1" if scenario.workers == 1 else "0,1",
        "wrk",
        "-t1",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")

    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    total = re.search(r"(\d+) requests in", out)
    requests = float(total.group(1)) if total else 0.0
    return {"rps": rps, "p50": percentile("50"), "p99": percentile("99"), "errors": errors, "requests": requests}


# Servers in the multi-process scenario, and how each is told its process count.
MULTI_PROCESS = {OURS, "gunicorn-gthread", "uwsgi"}


def with_workers(name: str, argv: List[str], workers: int) -> List[str]:
    if name.startswith("asyncwsgi"):
        return [*argv, "--workers", str(workers)]
    index = argv.index("--processes" if name == "uwsgi" else "-w")
    return [*argv[: index + 1], str(workers), *argv[index + 2 :]]


def measure(name: str, command: List[str], scenario: Scenario, seconds: int, script: Optional[str]) -> Result:
    port = free_port()
    env = dict(os.environ, BENCH_APP=scenario.app, PYTHONPATH=str(ROOT))
    argv = command(scenario.app, port)  # type: ignore[operator]
    if scenario.workers > 1:
        argv = with_workers(name, argv, scenario.workers)
    # Logs go to a file, as a service's do (to a file or a journal): a server that logs each
    # request pays for the writes.
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed after the server stops, below)
    proc = subprocess.Popen(
        ["taskset", "-c", "0" if scenario.workers == 1 else "0,1", *argv],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    holder = None
    try:
        wait_ready(port, proc)
        warm_up = dataclasses.replace(scenario, connections=min(scenario.connections, 16))
        run_wrk(port, warm_up, 1, script, scenario.path)
        rss_per_idle = None
        if scenario.idle:
            before = tree_rss_kib(proc.pid)
            holder = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    "1",
                    sys.executable,
                    str(ROOT / "benchmarks" / "idle.py"),
                    str(port),
                    str(scenario.idle),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            line = holder.stdout.readline() if holder.stdout else ""
            if line.strip() != "ready":
                raise RuntimeError(f"{name}: could not hold {scenario.idle} idle connections")
            rss_per_idle = (tree_rss_kib(proc.pid) - before) / scenario.idle
        switches = ContextSwitches(proc.pid) if scenario.connections == 1 else None
        with PeakRSS(proc.pid) as rss, ServedClients(port, scenario.connections, seconds) as served:
            if switches is not None:
                switches.start()
            cpu_before = tree_cpu_seconds(proc.pid)
            stats = run_wrk(port, scenario, seconds, script, scenario.path)
            cpu = tree_cpu_seconds(proc.pid) - cpu_before
            count = switches.stop() if switches is not None else None
        if not stats["rps"]:
            raise RuntimeError("no response completed within the run")
        value = stats["rps"] * scenario.mib_per_request if scenario.mib_per_request else stats["rps"]
        return Result(
            value,
            stats["p50"],
            stats["p99"],
            int(stats["errors"]),
            rss.peak / 1024,
            rss_per_idle,
            served.served,
            served.connections,
            count / stats["requests"] if count is not None and stats.get("requests") else None,
            stats["requests"] / cpu if cpu > 0 and stats.get("requests") else None,
        )
    finally:
        if holder is not None:
            holder.communicate(timeout=30)
        stop_server(proc)
        log.close()


def upload_script(size: int) -> str:
    path = Path(tempfile.gettempdir()) / f"asyncwsgi-bench-upload-{size}.lua"
    path.write_text(
        f'wrk.method = "POST"\nwrk.body = string.rep("u", {size})\n'
        'wrk.headers["Content-Type"] = "application/octet-stream"\n'
    )
    return str(path)


def median_result(results: List[Result]) -> Result:
    def med(values: List[float]) -> float:
        return statistics.median(values)

    idle = [r.rss_per_idle_kib for r in results if r.rss_per_idle_kib is not None]
    return Result(
        med([r.value for r in results]),
        med([r.p50_ms for r in results]),
        med([r.p99_ms for r in results]),
        int(med([r.errors for r in results])),
        med([r.peak_rss_mib for r in results]),
        med(idle) if idle else None,
        min(r.served for r in results),
        min(r.connections for r in results),
        med(switches) if (switches := [r.switches_per_request for r in results if r.switches_per_request]) else None,
        med(cpu) if (cpu := [r.requests_per_cpu_second for r in results if r.requests_per_cpu_second]) else None,
    )


# (label, scenario, other, kind, bound). Kinds: "ratio", ours / other's throughput >= bound
# ("best" as other: the best pure-Python peer's); "p99" and "p50", ours / other's latency <= bound;
# "variant", ours / the row ``other`` in the same scenario >= bound; "scenario", ours / ours in
# scenario ``other`` >= bound; "idle-kib", our KiB per idle connection <= bound; "ideal", ours >=
# bound req/s; "switches", our context switches per request / other's <= bound; "spread", our
# p99/p50 / other's p99/p50 <= bound (tail latency as a spread, not a throughput in disguise);
# "efficiency", our requests per CPU-second / ours in scenario ``other`` >= bound (wrk shares the
# CPUs with two workers, so their throughput cannot double; their efficiency can hold).
_NO_LOG = "asyncwsgi --no-access-log"
Target = Tuple[str, str, Optional[str], str, float]
TARGETS: List[Target] = [
    ("access log on: hello-50 vs --no-access-log", "hello-50", _NO_LOG, "variant", 0.9),
    ("access log on: hello-256 vs --no-access-log", "hello-256", _NO_LOG, "variant", 0.9),
    ("hello-50 vs waitress", "hello-50", "waitress", "ratio", 1.2),
    ("hello-50 vs cheroot", "hello-50", "cheroot", "ratio", 1.2),
    ("hello-256 vs waitress", "hello-256", "waitress", "ratio", 1.2),
    ("hello-256 vs cheroot", "hello-256", "cheroot", "ratio", 1.2),
    ("hello-256 p99/p50 spread vs waitress's", "hello-256", "waitress", "spread", 1.0),
    ("hello-256 p99/p50 spread vs cheroot's", "hello-256", "cheroot", "spread", 1.0),
    ("5000 idle: vs waitress", "hello-50-idle-5000", "waitress", "ratio", 2.0),
    ("5000 idle: vs cheroot", "hello-50-idle-5000", "cheroot", "ratio", 1.2),
    ("hello-1 vs waitress", "hello-1", "waitress", "ratio", 1.0),
    ("hello-1 vs cheroot", "hello-1", "cheroot", "ratio", 1.0),
    ("hello-1 p50 vs waitress's", "hello-1", "waitress", "p50", 1.0),
    ("hello-1 p50 vs cheroot's", "hello-1", "cheroot", "p50", 1.0),
    ("hello-1 context switches per request vs waitress's", "hello-1", "waitress", "switches", 1.0),
    ("streamed 1 MiB vs gunicorn gthread", "stream-1mib", "gunicorn-gthread", "ratio", 1.0),
    ("streamed 1 MiB vs cheroot", "stream-1mib", "cheroot", "ratio", 1.0),
    ("1 MiB upload vs cheroot", "upload-1mib", "cheroot", "ratio", 1.0),
    ("1 MiB download (Content-Length) vs cheroot", "download-1mib", "cheroot", "ratio", 1.3),
    *[
        (f"{page} vs the best pure-Python peer", page, "best", "ratio", 1.0)
        for page in ("flask-page-64", "flask-page-256", "django-page-64", "django-page-256")
    ],
    *[
        (f"{page} p99 vs waitress's", page, "waitress", "p99", 0.7)
        for page in ("flask-page-64", "flask-page-256", "django-page-64", "django-page-256")
    ],
    (
        "--workers 2 vs one worker (hello-50), requests per CPU-second",
        "hello-50-workers-2",
        "hello-50",
        "efficiency",
        0.9,
    ),
    ("--workers 2 vs gunicorn gthread -w 2", "hello-50-workers-2", "gunicorn-gthread", "ratio", 1.0),
    ("--workers 2 vs uWSGI, 2 processes", "hello-50-workers-2", "uwsgi", "ratio", 1.0),
]
# The first goals, which must still hold.
EARLIER_TARGETS: List[Target] = [
    ("hello-50 vs gunicorn gthread", "hello-50", "gunicorn-gthread", "ratio", 1.5),
    ("hello-50 vs uvicorn+a2wsgi (h11)", "hello-50", "uvicorn-a2wsgi-h11", "ratio", 2.5),
    ("hello-50 vs hypercorn", "hello-50", "hypercorn", "ratio", 2.5),
    ("5000 idle: within 10% of no-idle", "hello-50-idle-5000", "hello-50", "scenario", 0.9),
    ("memory per idle connection (KiB)", "hello-50-idle-5000", None, "idle-kib", 2.5),
    ("1 MiB upload vs waitress", "upload-1mib", "waitress", "ratio", 2.0),
    ("1 MiB download vs waitress", "download-1mib", "waitress", "ratio", 2.0),
    ("p99 at 256 connections vs waitress's", "hello-256", "waitress", "p99", 0.7),
    ("10 ms blocking app, share of ideal 800 req/s", "blocking-10ms", None, "ideal", 0.97 * 800),
]


def target_rows(
    medians: Dict[str, Dict[str, Result]], targets: List[Tuple[str, str, Optional[str], str, float]]
) -> List[str]:
    """Targets as table rows: label, wanted, measured, met. A target whose rows did not run is
    left out."""
    rows = []
    for label, scenario, other_name, kind, bound in targets:
        cells = medians.get(scenario, {})
        ours = cells.get(OURS)
        if ours is None:
            continue
        other: Optional[Result] = None
        if kind in ("scenario", "efficiency"):
            other = medians.get(other_name or "", {}).get(OURS)
        elif other_name == "best":
            peers = [(cells[p].value, p) for p in PURE_PYTHON_PEERS if p in cells]
            if peers:
                other_name = max(peers)[1]
                other = cells[other_name]
        elif other_name is not None:
            other = cells.get(other_name)
        if other_name is not None and other is None:
            continue
        if kind in ("ratio", "variant", "scenario") and other is not None:
            value = ours.value / other.value
            want, text, met = f">= {bound}x", f"{value:.2f}x", value >= bound
            if other_name is not None and kind == "ratio" and label.endswith("best pure-Python peer"):
                text += f" ({other_name})"
        elif kind in ("p99", "p50") and other is not None:
            mine, theirs = (ours.p99_ms, other.p99_ms) if kind == "p99" else (ours.p50_ms, other.p50_ms)
            value = mine / theirs
            want, met = f"<= {bound}x", value <= bound
            text = f"{value:.2f}x ({mine:.2f} vs {theirs:.2f} ms)"
        elif kind == "idle-kib" and ours.rss_per_idle_kib is not None:
            value = ours.rss_per_idle_kib
            want, text, met = f"<= {bound} KiB", f"{value:.1f} KiB", value <= bound
        elif kind == "ideal":
            want, text, met = ">= 97%", f"{ours.value:.0f} req/s ({ours.value / 800:.1%})", ours.value >= bound
        elif kind == "switches" and other is not None and ours.switches_per_request and other.switches_per_request:
            value = ours.switches_per_request / other.switches_per_request
            want, met = f"<= {bound}x", value <= bound
            text = f"{value:.2f}x ({ours.switches_per_request:.1f} vs {other.switches_per_request:.1f})"
        elif (
            kind == "efficiency"
            and other is not None
            and ours.requests_per_cpu_second
            and other.requests_per_cpu_second
        ):
            value = ours.requests_per_cpu_second / other.requests_per_cpu_second
            want, met = f">= {bound}x", value >= bound
            text = f"{value:.2f}x ({ours.requests_per_cpu_second:,.0f} vs {other.requests_per_cpu_second:,.0f})"
        elif kind == "spread" and other is not None and ours.p50_ms and other.p50_ms:
            mine, theirs = ours.p99_ms / ours.p50_ms, other.p99_ms / other.p50_ms
            value = mine / theirs
            want, met = f"<= {bound}x", value <= bound
            text = f"{value:.2f}x ({mine:.2f} vs {theirs:.2f})"
        else:
            continue
        rows.append(f"| {label} | {want} | {text} | {'yes' if met else '**no**'} |")
    return rows


def code_version() -> str:
    """The commit measured, and whether the tree had changes beyond it (the servers import the
    working tree: ``pip install -e``)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "asyncwsgi"], cwd=ROOT, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"`{commit}`" + (" with uncommitted changes to asyncwsgi/" if dirty.strip() else "")


def write_report(
    medians: Dict[str, Dict[str, Result]],
    failures: Dict[str, Dict[str, str]],
    runs: int,
    seconds: int,
    path: Path,
    bindir: Path,
) -> None:
    versions = subprocess.run(
        [
            str(bindir / "python"),
            "-c",
            "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) "
            "for p in ['asyncwsgi','waitress','gunicorn','cheroot','uvicorn','a2wsgi','hypercorn','uvloop','h11',"
            "'httptools','flask','django','granian','bjoern','gevent','pyuwsgi'] if p in {d.metadata['Name'].lower() "
            "for d in m.distributions()}}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/run.py` "
        f"({'quick: ' if runs == 1 else ''}median of {runs} interleaved run(s) of {seconds} s per cell).",
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}. "
        "Each server is one process with 8 threads where it has threads, pinned to CPU 0; wrk on CPU 1.",
        f"Versions: `{versions.strip()}`. Code: {code_version()}.",
        "",
        f"Ratios are {OURS}'s throughput divided by the row's: above 1 means asyncwsgi is faster.",
        "",
        f"`{OURS}` is the command with no tuning flags (`asyncwsgi app:application`: uvloop where",
        "installed, the access log on, written to a file as every server's log is here). Labelled rows",
        "are the same server with one flag. Every server's keep-alive is 600 s, so none drops the idle",
        "connections of the idle scenario. *Clients served* is how many of wrk's connections had at",
        "least one response, read from the kernel once a second (`ss`: wrk's sockets and the bytes",
        "each received): a server that answers only as many connections as it has threads shows it",
        "there (uWSGI: 8 of 50). It can read low where connections churn, since wrk's new sockets",
        "have received nothing when looked at (seen with waitress's stream). cheroot's 0 of 50",
        "under 5,000 idle connections, while it answered thousands of requests a second, is",
        "such a case or a fault of the count; it was not checked.",
        "The multi-process scenario shares both CPUs with wrk, so two workers cannot reach 2x one.",
        "",
        "## The project's goals, against this run",
        "",
        "| target | wanted | measured | met |",
        "| --- | --- | --- | --- |",
        *target_rows(medians, TARGETS),
        "",
        "## Earlier goals, against this run",
        "",
        "| target | wanted | measured | met |",
        "| --- | --- | --- | --- |",
        *target_rows(medians, EARLIER_TARGETS),
        "",
        "granian (Rust) and bjoern (C, one thread, no pool: an app that blocks stalls it) are compiled",
        "servers, shown as reference points where they install; the goals compare pure-Python peers.",
        "",
    ]
    for scenario in SCENARIOS:
        rows = medians.get(scenario.name)
        if not rows:
            continue
        lines += [f"## {scenario.description}", "", f"![{scenario.name}](img/bench-{scenario.name}.png)", ""]
        header = f"| server | {scenario.unit} | p50 ms | p99 ms | errors | clients served | peak RSS MiB |"
        switches = any(r.switches_per_request for r in rows.values())
        if switches:
            header += " context switches per request |"
        if scenario.idle:
            header += " RSS per idle connection KiB |"
        header += f" {OURS} ÷ this |"
        lines += [header, "|" + " --- |" * (header.count("|") - 1)]
        ours = rows.get(OURS)
        for name, result in sorted(rows.items(), key=lambda item: -item[1].value):
            ratio = f"{ours.value / result.value:.2f}x" if ours and result.value else "-"
            row = (
                f"| {name} | {result.value:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.errors} |"
                f" {result.served}/{result.connections} | {result.peak_rss_mib:.0f} |"
            )
            if switches:
                row += f" {result.switches_per_request:.1f} |" if result.switches_per_request else " - |"
            if scenario.idle:
                row += f" {result.rss_per_idle_kib:.1f} |" if result.rss_per_idle_kib is not None else " - |"
            lines.append(row + f" {ratio} |")
        for name, reason in sorted(failures.get(scenario.name, {}).items()):
            lines.append(f"\n{name} could not run this scenario: {reason}")
        lines.append("")
    path.write_text("\n".join(lines))


def write_charts(medians: Dict[str, Dict[str, Result]], img_dir: Path, bindir: Path) -> None:
    data = {s.name: {n: r.value for n, r in medians.get(s.name, {}).items()} for s in SCENARIOS}
    units = {s.name: f"{s.description} ({s.unit})" for s in SCENARIOS}
    code = f"""
import json, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
data, units = json.loads({json.dumps(json.dumps(data))}), json.loads({json.dumps(json.dumps(units))})
for name, rows in data.items():
    if not rows:
        continue
    items = sorted(rows.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(items) + 1))
    colors = ["#d62728" if n.startswith("asyncwsgi") else "#7f7f7f" for n, _ in items]
    ax.barh([n for n, _ in items], [v for _, v in items], color=colors)
    ax.set_title(units[name], fontsize=10)
    fig.tight_layout()
    fig.savefig({str(img_dir)!r} + f"/bench-{{name}}.png", dpi=90)
    plt.close(fig)
"""
    img_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(bindir / "python"), "-c", code], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 3 s run per cell")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seconds", type=int)
    parser.add_argument("--servers", help="comma-separated subset")
    parser.add_argument("--scenarios", help="comma-separated subset")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (3 if args.quick else 10)
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required: apt-get install wrk util-linux")
    bindir = venv_bindir()
    servers = {name: command for name, command in server_commands(bindir).items() if installed(bindir, name)}
    if args.servers:
        servers = {k: v for k, v in servers.items() if k in args.servers.split(",")}
    scenarios = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios.split(",")]
    results: Dict[str, Dict[str, List[Result]]] = {}
    failures: Dict[str, Dict[str, str]] = {}
    for round_number in range(runs):
        for scenario in scenarios:
            script = upload_script(scenario.upload_bytes) if scenario.upload_bytes else None
            for name, command in servers.items():
                if scenario.workers > 1 and name not in MULTI_PROCESS:
                    continue
                try:
                    result = measure(name, command, scenario, seconds, script)  # type: ignore[arg-type]
                except Exception as exc:  # a peer that fails a scenario gets no row, and we say why
                    print(f"  {scenario.name:20s} {name:26s} FAILED: {exc}", flush=True)
                    failures.setdefault(scenario.name, {})[name] = str(exc)
                    continue
                results.setdefault(scenario.name, {}).setdefault(name, []).append(result)
                print(
                    f"  round {round_number + 1}/{runs} {scenario.name:20s} {name:26s} "
                    f"{result.value:10,.0f} {scenario.unit}  p99 {result.p99_ms:7.2f} ms  "
                    f"errors {result.errors}  served {result.served}/{result.connections}",
                    flush=True,
                )
    medians = {s: {n: median_result(r) for n, r in rows.items()} for s, rows in results.items()}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_report(medians, failures, runs, seconds, output, bindir)
    write_charts(medians, output.parent / "img", bindir)
    print(f"\nwrote {output}")


if __name__ == "__main__":
    main()
