#!/usr/bin/env python3
"""Run Autobahn|Testsuite's fuzzing client against asyncwsgi's WebSockets, on both loops.

Autobahn|Testsuite (https://github.com/crossbario/autobahn-testsuite, Apache License 2.0) is the
public conformance suite for RFC 6455 and RFC 7692. Its client is Python 2 code: this script
installs it (PyPI ``autobahntestsuite``) for a Python 2.7 (pyenv's, or ``AUTOBAHN_PYTHON``) into
``.venvs/autobahn-py2.7``, starts ``asyncwsgi`` with an echo app mounted at ``/ws`` once per
loop, runs the cases against both, and prints per loop how many came out OK, NON-STRICT,
INFORMATIONAL, UNIMPLEMENTED and FAILED. It exits 1 if any case FAILED (in its behaviour or its
close), or if a case has no result.

The cases: the core ones (1.* to 10.*, 247 in all) and the permessage-deflate ones (12.* and 13.*)
with payloads up to 4 KiB (their first five sizes: 60 cases). Run it as

    python scripts/autobahn.py                    # everything: about 3 minutes
    python scripts/autobahn.py --cases 1.* 2.*    # some groups
    python scripts/autobahn.py --report DIR       # keep Autobahn's HTML report in DIR
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
TARGET = ".venvs/autobahn-py2.7"
LOOPS = ("asyncio", "uvloop")
OUTCOMES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
CORE = [f"{group}.*" for group in range(1, 11)]
# 12.* (permessage-deflate, default parameters) and 13.* (negotiated parameters): sizes 1 to 5
# are payloads of 16 B to 4 KiB. (Named one by one: Autobahn reads "12.*.1" as a prefix.)
DEFLATE = [f"12.{g}.{s}" for g in range(1, 6) for s in range(1, 6)] + [
    f"13.{g}.{s}" for g in range(1, 8) for s in range(1, 6)
]


def python27() -> str:
    explicit = os.environ.get("AUTOBAHN_PYTHON")
    if explicit:
        return explicit
    roots = [os.path.expanduser("~/.pyenv")]
    try:
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip())
    except OSError:
        pass
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python")))
        if found:
            return found[-1]
    sys.exit("autobahn: no Python 2.7 found (set AUTOBAHN_PYTHON, or `pyenv install 2.7.18`)")


def install(python: str) -> Path:
    """autobahntestsuite into a folder of its own, for ``python -m autobahntestsuite.wstest``."""
    target = ROOT / TARGET
    if not (target / "autobahntestsuite").is_dir():
        print(f"== installing autobahntestsuite for {python} into {TARGET}", flush=True)
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-warn-script-location"]
        subprocess.run([*pip, "--target", str(target), "autobahntestsuite"], check=True)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(loop: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "asyncwsgi", "tests.apps.websocket_echo:wsgi_app"]
    command += ["--mount", "/ws=tests.apps.websocket_echo:app", "--loop", loop, "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"autobahn: asyncwsgi --loop {loop} exited with {proc.returncode}")
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"autobahn: asyncwsgi --loop {loop} did not listen within 30 s")


def tally(index: Dict[str, Dict[str, Dict[str, str]]], agent: str, cases: int) -> Dict[str, int]:
    """Outcome counts for one agent; a case counts as FAILED if its behaviour or its close did."""
    counts = dict.fromkeys(OUTCOMES, 0)
    results = index.get(agent, {})
    for result in results.values():
        behavior = result.get("behavior", "FAILED")
        if result.get("behaviorClose") == "FAILED":
            behavior = "FAILED"
        counts[behavior if behavior in counts else "FAILED"] += 1
    counts["FAILED"] += max(0, cases - len(results))  # no result at all
    return counts


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=CORE + DEFLATE, help="case patterns (default: all of ours)")
    parser.add_argument("--loops", nargs="+", default=list(LOOPS), choices=LOOPS)
    parser.add_argument("--report", help="keep Autobahn's report (HTML and JSON) in this directory")
    args = parser.parse_args(argv)
    packages = install(python27())
    servers = {loop: free_port() for loop in args.loops}
    procs = [start(loop, port) for loop, port in servers.items()]
    workdir = Path(args.report or tempfile.mkdtemp(prefix="autobahn-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "outdir": str(workdir / "servers"),
        "servers": [
            {"agent": f"asyncwsgi-{loop}", "url": f"ws://127.0.0.1:{port}/ws/echo"} for loop, port in servers.items()
        ],
        "cases": args.cases,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    (workdir / "fuzzingclient.json").write_text(json.dumps(spec, indent=1))
    # A site directory, not PYTHONPATH: zope.interface is a namespace package, set up by a .pth.
    wstest = "import site, sys; site.addsitedir(sys.argv.pop(1)); from autobahntestsuite import wstest; wstest.run()"
    started = time.monotonic()
    try:
        run = subprocess.run(
            [python27(), "-c", wstest, str(packages), "-m", "fuzzingclient", "-s", "fuzzingclient.json"],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    if run.returncode != 0:
        print(f"autobahn: wstest exited with {run.returncode}", file=sys.stderr)
        return 1
    index = json.loads((workdir / "servers" / "index.json").read_text())
    expected = max((len(results) for results in index.values()), default=0)
    print(f"Autobahn|Testsuite, {expected} cases per loop, {time.monotonic() - started:.0f} s")
    print("| loop | " + " | ".join(OUTCOMES) + " |")
    print("| --- |" + " --- |" * len(OUTCOMES))
    failed = 0
    for loop in servers:
        counts = tally(index, f"asyncwsgi-{loop}", expected)
        failed += counts["FAILED"]
        print(f"| {loop} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    if failed:
        for agent, results in index.items():
            bad = [case for case, r in results.items() if "FAILED" in (r.get("behavior"), r.get("behaviorClose"))]
            if bad:
                print(f"{agent} FAILED: {', '.join(sorted(bad))}", file=sys.stderr)
        print(f"see {workdir / 'servers' / 'index.html'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
