"""One shared accept socket, or one SO_REUSEPORT socket per worker? (issue 5)

``asyncwsgi --workers 2`` is run both ways on the same port:

* ``reuseport`` (the default): each worker has its own socket bound with SO_REUSEPORT, and the
  kernel spreads new connections between the sockets by a hash of the addresses;
* ``shared`` (``--no-reuse-port``): both workers accept from one inherited socket, and whichever
  is woken first takes what is queued.

Measured per scenario: requests per second, p99, errors, and the balance: the share of all
requests that the busier worker served (50% is perfect balance), counted from the access log,
one line per request carrying the worker's pid. Rounds are interleaved; the medians are printed
as a Markdown table for docs/deployment.md.

    python benchmarks/accept_balance.py [--seconds 5] [--rounds 3] [--cases 1,3]
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.run import ROOT, free_port, stop_server, venv_bindir, wait_ready

MODES = ("reuseport", "shared")


@dataclass(frozen=True)
class Case:
    name: str
    app: str
    connections: int
    close: bool = False  # a new connection per request (Connection: close), so every request is an accept


CASES = [
    Case("hello, 50 keep-alive connections", "benchmarks.apps:hello", 50),
    Case("hello, 256 keep-alive connections", "benchmarks.apps:hello", 256),
    Case("hello, a new connection per request, 50 at a time", "benchmarks.apps:hello", 50, close=True),
    Case("app blocks 10 ms, 16 keep-alive connections (ideal 1600 req/s)", "benchmarks.apps:blocking", 16),
    Case("app blocks 10 ms, 64 keep-alive connections (ideal 1600 req/s)", "benchmarks.apps:blocking", 64),
]


def run_wrk(port: int, case: Case, seconds: int) -> Dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{case.connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if case.close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    match = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    p99 = float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)] if match else float("nan")
    errors = 0
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if found:
        errors += sum(int(g) for g in found.groups())
        if case.close:
            errors -= int(found.group(2))  # wrk counts the server's close after each response as a read error
    return {"rps": rps, "p99": p99, "errors": errors}


def measure(mode: str, case: Case, seconds: int, python: str) -> Dict[str, float]:
    port = free_port()
    argv = [python, "-m", "asyncwsgi", case.app, "--port", str(port), "--workers", "2", "--threads", "8"]
    argv += ["--keep-alive", "600", "--access-log-format", "%(p)s", "--log-level", "warning"]
    if mode == "shared":
        argv.append("--no-reuse-port")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_ready(port, proc)
            time.sleep(1.0)  # both workers up (wait_ready needs only one)
            before = _served(log)
            result = run_wrk(port, case, seconds)
            after = _served(log)
        finally:
            stop_server(proc, grace=15.0)
    served = [after[pid] - before.get(pid, 0) for pid in after]
    served += [0] * (2 - len(served))  # a worker that served nothing
    result["busier_share"] = 100.0 * max(served) / max(sum(served), 1)
    return result


def _served(log: IO[bytes]) -> Dict[str, int]:
    """Requests served so far, by worker pid (each access-log line is just the pid)."""
    log.seek(0)
    return dict(collections.Counter(line.strip().decode() for line in log if line.strip().isdigit()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=str, default="", help="comma-separated case numbers (1-based)")
    args = parser.parse_args()
    python = str(venv_bindir() / "python")
    chosen = [CASES[int(i) - 1] for i in args.cases.split(",")] if args.cases else CASES
    results: Dict[str, Dict[str, List[Dict[str, float]]]] = {c.name: {m: [] for m in MODES} for c in chosen}
    for round_number in range(args.rounds):
        for case in chosen:
            order = MODES if round_number % 2 == 0 else MODES[::-1]
            for mode in order:
                result = measure(mode, case, args.seconds, python)
                results[case.name][mode].append(result)
                print(f"round {round_number + 1} {mode:9} {case.name}: {fmt(result)}", file=sys.stderr, flush=True)
    print("| scenario | listener | req/s | p99 ms | busier worker's share of requests (range) | errors |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in chosen:
        for mode in MODES:
            runs = results[case.name][mode]
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            spread = "-".join(
                f"{v:.0f}" for v in (min(r["busier_share"] for r in runs), max(r["busier_share"] for r in runs))
            )
            print(
                f"| {case.name} | {mode} | {median['rps']:.0f} | {median['p99']:.1f} | "
                f"{median['busier_share']:.0f}% ({spread}%) | {median['errors']:.0f} |"
            )


def fmt(result: Dict[str, float]) -> str:
    return (
        f"{result['rps']:.0f} req/s, p99 {result['p99']:.1f} ms, "
        f"busier {result['busier_share']:.0f}%, errors {result['errors']:.0f}"
    )


if __name__ == "__main__":
    main()
