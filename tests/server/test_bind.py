"""--bind: several listeners at once (TCP, IPv6, Unix sockets, inherited fds, systemd)."""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import stat
import subprocess
import sys

import pytest

from asyncwsgi import Config, ConfigError
from asyncwsgi.http.binds import BindAddress, parse_bind
from asyncwsgi.server import listener
from asyncwsgi.server.listener import ShortageLog
from tests.apps import basic
from tests.helpers import WAIT, Reader, get
from tests.proc import ROOT, CLIServer, _clean_environ


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("127.0.0.1:8000", BindAddress("tcp", host="127.0.0.1", port=8000)),
        ("0.0.0.0:0", BindAddress("tcp", host="0.0.0.0", port=0)),
        (":8080", BindAddress("tcp", host="", port=8080)),
        ("[::1]:443", BindAddress("tcp", host="::1", port=443)),
        ("localhost:1", BindAddress("tcp", host="localhost", port=1)),
        ("unix:/run/app.sock", BindAddress("unix", path="/run/app.sock")),
        ("fd://3", BindAddress("fd", fd=3)),
        ("systemd", BindAddress("systemd")),
    ],
)
def test_parse_bind(spec, expected):
    assert parse_bind(spec) == expected


@pytest.mark.parametrize(
    "spec,reason",
    [
        ("8000", "expected HOST:PORT"),
        ("::1:80", "brackets"),
        ("[::1]80", "[ADDRESS]:PORT"),
        ("host:port", "port must be a number"),
        ("host:70000", "port must be a number"),
        ("unix:", "needs a path"),
        ("fd://x", "file descriptor number"),
    ],
)
def test_bad_bind_is_a_config_error_naming_the_flag(spec, reason):
    with pytest.raises(ConfigError, match="--bind .*" + re.escape(reason)):
        Config(bind=(spec,))


def test_bind_excludes_uds_and_fd_and_mode_is_octal():
    with pytest.raises(ConfigError, match="--bind replaces --uds and --fd"):
        Config(bind=("127.0.0.1:0",), uds="/tmp/x.sock")
    with pytest.raises(ConfigError, match="--uds-mode must be octal"):
        Config(uds_mode="rw-rw----")
    with pytest.raises(ConfigError, match="--uds-mode must be octal"):
        Config(uds_mode="1777")


def _get_tcp(port: int, host: str = "127.0.0.1", family: int = socket.AF_INET) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect((host, port))
        sock.sendall(get("/"))
        return Reader(sock).response().body


def _get_unix(path: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(path)
        sock.sendall(get("/"))
        return Reader(sock).response().body


def test_several_listeners_serve_alike_and_unix_files_are_removed(serve, tmp_path):
    path = str(tmp_path / "app.sock")
    srv = serve(basic.hello, bind=("127.0.0.1:0", "127.0.0.1:0", f"unix:{path}"), uds_mode="600")
    sockets = srv.server.sockets
    assert len(sockets) == 3
    ports = [s.getsockname()[1] for s in sockets if s.family == socket.AF_INET]
    assert len(set(ports)) == 2
    for port in ports:
        assert _get_tcp(port) == b"Hello, world!"
    assert _get_unix(path) == b"Hello, world!"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    srv.stop()
    assert not os.path.exists(path)


def _skip_without_ipv6() -> None:
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")


def test_ipv6_listener(serve):
    _skip_without_ipv6()
    srv = serve(basic.hello, bind=("[::1]:0",))
    port = srv.server.sockets[0].getsockname()[1]
    assert _get_tcp(port, "::1", socket.AF_INET6) == b"Hello, world!"


def test_systemd_socket_activation():
    """systemd passes listening sockets from fd 3 and says so in LISTEN_FDS / LISTEN_PID."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # Like systemd: the socket at fd 3, and LISTEN_PID naming the process that gets it (execv
    # keeps the pid, so the launcher can name itself).
    launcher = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_FDS'] = '1'; "
        "os.environ['LISTEN_PID'] = str(os.getpid()); "
        "os.execv(sys.executable, [sys.executable, '-m', 'asyncwsgi', 'tests.apps.basic:hello', '--bind', 'systemd'])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, str(fd)],
        cwd=ROOT,
        pass_fds=(fd,),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_clean_environ(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line, line
        assert _get_tcp(port) == b"Hello, world!"
    finally:
        proc.terminate()
        proc.communicate(timeout=WAIT)  # reads and closes the pipe
        listener.close()
    assert proc.returncode == 0


def test_systemd_without_sockets_is_a_one_line_error():
    with CLIServer("tests.apps.basic:hello", "--bind", "systemd") as server:
        assert server.wait() == 1
    assert "LISTEN_FDS is not set" in server.output()


def test_port_0_on_both_families_is_one_port(serve):
    _skip_without_ipv6()
    srv = serve(basic.hello, bind=(":0",))  # the wildcard: 0.0.0.0 and ::
    families = {sock.family: sock.getsockname()[1] for sock in srv.server.sockets}
    assert set(families) == {socket.AF_INET, socket.AF_INET6}
    port = families[socket.AF_INET]
    assert families[socket.AF_INET6] == port  # what the banner prints is where both listen
    assert _get_tcp(port) == b"Hello, world!"
    assert _get_tcp(port, "::1", socket.AF_INET6) == b"Hello, world!"


def test_port_0_tries_again_when_the_other_family_has_that_port_taken(monkeypatch):
    calls = []
    real = listener._bind_tcp_set

    def taken_twice(infos, reuse_port):
        calls.append(infos)
        if len(calls) <= 2:
            raise OSError(errno.EADDRINUSE, "taken in the other family")
        return real(infos, reuse_port)

    monkeypatch.setattr(listener, "_bind_tcp_set", taken_twice)
    sockets = listener._bind_tcp("127.0.0.1", 0)
    try:
        assert len(calls) == 3 and len(sockets) == 1
    finally:
        for sock in sockets:
            sock.close()
    calls.clear()
    with pytest.raises(OSError, match="taken in the other family"):  # a fixed port is not retried
        listener._bind_tcp("127.0.0.1", 1)
    assert len(calls) == 1


def test_accept_failures_for_want_of_fds_log_a_line_then_a_count(caplog):
    """EMFILE retried ten times a second for 12 s: the first failure, two summaries, the recovery;
    not 120 lines."""
    now = [100.0]
    log = ShortageLog(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="asyncwsgi.error")
    exc = OSError(errno.EMFILE, "Too many open files")
    for _ in range(120):
        log.failed(exc)
        now[0] += 0.1
    log.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "backing off" in lines[0]
    # 50 retries in 5 s (51 with the clock's float rounding), then the next summary.
    assert re.search(r"still failing: .* \((50|51) more times in 5s\)", lines[1]), lines[1]
    assert re.search(r"still failing: .* \((50|51) more times in 5s\)", lines[2]), lines[2]
    assert lines[3] == "accept() works again after 120 failures"
    assert log.failures == 0
