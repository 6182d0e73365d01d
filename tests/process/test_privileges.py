"""--pid-file, and --user/--group: bind as root, then serve (and load the app) as someone else."""

from __future__ import annotations

import os
import pwd
import socket
import sys
import tempfile

import pytest

from tests.helpers import Reader, children, get, listening_sockets, wait_for
from tests.proc import ROOT, WAIT, CLIServer, run_cli


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(get("/"))
        return Reader(sock).response().body


def _uids(pid: int) -> list:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return [int(v) for v in line.split()[1:]]
    raise AssertionError("no Uid line")


def test_pid_file_lives_as_long_as_the_server(tmp_path):
    path = tmp_path / "asyncwsgi.pid"
    with CLIServer("tests.apps.basic:hello", "--port", "0", "--pid-file", str(path)) as server:
        server.wait_listening()
        assert path.read_text() == f"{server.pid}\n"
        server.signal()
        assert server.wait() == 0
    assert not path.exists()


def _world_can_reach(path: str) -> bool:
    """Whether every directory down to ``path`` lets other users in (nobody must import the app)."""
    path = os.path.abspath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
@pytest.mark.skipif(not _world_can_reach(str(ROOT)), reason="the checkout is not readable by other users")
def _interpreter_for_others():
    """A Python of this version that other users may run, and the environment that gives it this
    test run's packages: the supervisor starts workers with its own interpreter, as the user."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"):
        if os.path.exists(candidate) and _world_can_reach(os.path.realpath(candidate)):
            if candidate == sys.executable:
                return candidate, None
            site = [p for p in sys.path if p.endswith("site-packages") and _world_can_reach(p)]
            return candidate, {"PYTHONPATH": os.pathsep.join([str(ROOT), *site])}
    return None, None


@pytest.mark.parametrize("workers", [1, 2])
def test_user_and_group_after_binding(workers):
    python, env = _interpreter_for_others()
    if workers > 1 and python is None:
        pytest.skip("workers are started as the user, and no Python of this version is runnable by others")
    nobody = pwd.getpwnam("nobody")
    # A run directory of the user's, as systemd's RuntimeDirectory= makes (pytest's tmp_path is
    # not reachable by other users).
    run_dir = tempfile.mkdtemp(prefix="asyncwsgi-run-")
    os.chmod(run_dir, 0o755)
    os.chown(run_dir, nobody.pw_uid, nobody.pw_gid)
    sock_path = os.path.join(run_dir, "app.sock")
    with CLIServer(
        "tests.apps.basic:hello",
        "--bind",
        "127.0.0.1:0",
        "--bind",
        f"unix:{sock_path}",
        "--user",
        "nobody",
        "--workers",
        str(workers),
        python=python or sys.executable,
        env=env,
    ) as server:
        server.wait_listening()
        assert wait_for(lambda: server.listening_tcp)  # the TCP line may come after the Unix one
        assert set(_uids(server.pid)) == {nobody.pw_uid}  # real, effective, saved, filesystem
        if workers > 1:
            assert wait_for(lambda: len(children(server.pid)) == workers)
            assert all(set(_uids(pid)) == {nobody.pw_uid} for pid in children(server.pid))
            # Each worker's own SO_REUSEPORT socket, bound as root before the switch.
            assert listening_sockets(server.port) == workers
        assert _get(server.port) == b"Hello, world!"
        assert os.stat(sock_path).st_uid == nobody.pw_uid
        server.signal()
        assert server.wait() == 0
    assert not os.path.exists(sock_path)  # removed at exit, though bound before dropping to nobody
    os.rmdir(run_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_unknown_user_is_a_one_line_error():
    result = run_cli("tests.apps.basic:hello", "--port", "0", "--user", "no-such-user-xyz")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["asyncwsgi: error: --user: no such user 'no-such-user-xyz'"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may switch users")
def test_user_without_root_is_a_one_line_error():
    result = run_cli("tests.apps.basic:hello", "--port", "0", "--user", "nobody")
    assert result.returncode == 2
    assert "need the server to be started as root" in result.stderr
