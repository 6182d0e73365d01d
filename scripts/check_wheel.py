"""Build the sdist and the wheel, check what they hold, install the wheel into fresh virtualenvs
and serve a request from each: what a user who runs ``pip install asyncwsgi-server`` gets.

    python scripts/check_wheel.py                          # this Python only
    python scripts/check_wheel.py /path/to/python3.12 ...  # and in a fresh venv of each

The editable install the tests use never shows a file left out of the wheel, a missing
``py.typed`` or a broken console script; this does. It runs outside the checkout (in a
temporary directory) so ``import asyncwsgi`` can only find the installed copy.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "asyncwsgi-server"
APP = """
def app(environ, start_response):
    import asyncwsgi
    body = ("served by " + asyncwsgi.__file__).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def fail(message: str) -> None:
    print(f"check_wheel: {message}", file=sys.stderr)
    raise SystemExit(1)


def build(out: Path) -> tuple[Path, Path]:
    """``python -m build`` in an isolated environment: the sdist, then the wheel from it."""
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        fail(f"expected one wheel and one sdist, got {[p.name for p in out.iterdir()]}")
    return wheels[0], sdists[0]


def check_wheel_contents(wheel: Path) -> None:
    """Every module of the package and ``py.typed``, the right name and command, nothing else."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = archive.read(metadata).decode()
        entry_points = archive.read(metadata.replace("METADATA", "entry_points.txt")).decode()
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "asyncwsgi").rglob("*.py")}
    missing = expected - names
    if missing:
        fail(f"modules missing from the wheel: {sorted(missing)}")
    if "asyncwsgi/py.typed" not in names:
        fail("py.typed is missing from the wheel (PEP 561)")
    strays = sorted(n for n in names if not (n.startswith("asyncwsgi/") or ".dist-info/" in n))
    if strays:
        fail(f"files outside the package in the wheel: {strays}")
    if f"Name: {DISTRIBUTION}" not in meta or "Classifier: Typing :: Typed" not in meta:
        fail("METADATA lacks the distribution name or the Typing :: Typed classifier")
    if "asyncwsgi = asyncwsgi.process.cli:main" not in entry_points:
        fail("the asyncwsgi command is not in entry_points.txt")
    print(f"wheel {wheel.name}: {len(names)} files, every module and py.typed present")


def check_sdist_contents(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for needed in ("LICENSE", "README.md", "pyproject.toml", "asyncwsgi/py.typed", "asyncwsgi/__init__.py"):
        if needed not in names:
            fail(f"{needed} is missing from the sdist")
    print(f"sdist {sdist.name}: {len(names)} files")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_from(python: str, wheel: Path, work: Path) -> None:
    """A fresh venv of ``python`` with the wheel (and uvloop) installed; the command serves."""
    venv = work / f"venv-{Path(python).name}-{abs(hash(python)) % 10000}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, f"{wheel}[uvloop]"], check=True)
    (work / "probe_app.py").write_text(APP)
    port = free_port()
    command = [str(venv / "bin" / "asyncwsgi"), "probe_app:app", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.1)
        if not body.startswith("served by ") or str(venv) not in body:
            fail(f"{python}: no answer from the installed copy (got {body!r})")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        output = server.stdout.read() if server.stdout else ""
        if code != 0:
            fail(f"{python}: exit status {code} after SIGTERM:\n{output}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"Python {version}: the wheel installs into a fresh venv and serves ({body.split('/')[-2]})")


def main(argv: List[str]) -> int:
    pythons = [sys.executable, *argv]
    with tempfile.TemporaryDirectory(prefix="asyncwsgi-wheel-") as tmp:
        work = Path(tmp)
        wheel, sdist = build(work / "dist")
        check_wheel_contents(wheel)
        check_sdist_contents(sdist)
        os.chdir(work)  # nothing of the checkout on sys.path
        for python in pythons:
            serve_from(python, wheel, work)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
