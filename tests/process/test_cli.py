"""The asyncwsgi command: flags, errors, signals, listeners. Each test runs a real process."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

from asyncwsgi import __version__
from asyncwsgi.config import Config, flag_name
from asyncwsgi.process.cli import _Signals, build_parser
from asyncwsgi.process.logfiles import LogSetup
from tests.helpers import Reader, wait_for
from tests.proc import ROOT, WAIT, CLIServer, _clean_environ, run_cli


def _get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        return Reader(sock).response().body


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"asyncwsgi {__version__}"


def test_help_documents_every_config_field():
    result = run_cli("--help")
    assert result.returncode == 0
    for f in dataclasses.fields(Config):
        flag = flag_name(f.name)
        expected = f"--no-{flag[2:]}" if f.default is True else flag
        assert expected in result.stdout, f"{expected} missing from --help"
    for flag in ("--factory", "--app-dir", "--version"):
        assert flag in result.stdout


@pytest.mark.parametrize(
    "args,needle,code",
    [
        (["nosuchmodule_xyz:app"], "could not import module 'nosuchmodule_xyz'", 1),
        (["tests.apps.basic:missing"], "has no attribute 'missing'", 1),
        (["tests.apps.basic"], "'module:attribute'", 1),
        (["tests.apps.basic:Tracker.__init__.__doc__"], "not a callable", 1),
        (["tests.apps.basic:hello", "--no-such-flag"], "unrecognized arguments: --no-such-flag", 2),
        (["tests.apps.basic:hello", "--threads", "0"], "--threads must be >= 1, got 0", 2),
        (["tests.apps.basic:hello", "--threads", "many"], "--threads expects int, got 'many'", 2),
        (["tests.apps.basic:hello", "--loop", "tokio"], "invalid choice: 'tokio'", 2),
        (["tests.apps.basic:hello", "--keep-alive", "nan"], "--keep-alive must be a finite number", 2),
        (["tests.apps.basic:hello", "--uds", "/tmp/x.sock", "--fd", "3"], "--uds and --fd are mutually exclusive", 2),
        (["tests.apps.basic:hello", "--port", "70000"], "--port must be between 0 and 65535", 2),
        (["tests.apps.basic:hello", "--spool-dir", "/nonexistent/spool"], "--spool-dir /nonexistent/spool is not", 2),
        (["tests.apps.basic:hello", "--spool-dir", "/tmp", "--spool-total-bytes", "0"], "nothing is spooled", 2),
    ],
    ids=[
        "no-module",
        "no-attr",
        "no-colon",
        "not-callable",
        "unknown-flag",
        "bad-threads",
        "not-int",
        "bad-loop",
        "nan",
        "uds-and-fd",
        "bad-port",
        "no-spool-dir",
        "spool-dir-unused",
    ],
)
def test_bad_invocation_is_one_line_and_nonzero(args, needle, code):
    result = run_cli(*args)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("asyncwsgi: error:")
    assert needle in lines[0]


def test_port_in_use_is_one_line_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("tests.apps.basic:hello", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("asyncwsgi: error: cannot listen")


def test_error_inside_app_module_is_reported():
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "broken_app.py"), "w") as f:
            f.write("import nonexistent_dependency_xyz\n")
        result = run_cli("broken_app:app", "--app-dir", tmp)
    assert result.returncode == 1
    assert "error while importing 'broken_app'" in result.stderr
    assert "nonexistent_dependency_xyz" in result.stderr
    assert 'broken_app.py", line 1' in result.stderr  # the traceback, pointing at the app's line
    assert result.stderr.strip().splitlines()[-1].startswith("asyncwsgi: error: error while importing")


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_then_sigterm_exits_zero(loop):
    with CLIServer("tests.apps.basic:hello", "--port", "0", "--loop", loop, "--threads", "3") as server:
        server.wait_listening()
        assert _get(server.port) == b"Hello, world!"
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    out = server.output()
    assert f"(loop: {loop}, threads: 3)" in out
    assert '"GET / HTTP/1.1" 200 13' in out  # the access log line


def test_sigint_lets_in_flight_request_finish():
    with CLIServer("tests.apps.basic:announced_slow", "--port", "0") as server:
        server.wait_listening()
        result = []
        client = threading.Thread(target=lambda: result.append(_get(server.port, "/?0.5")))
        client.start()
        assert wait_for(lambda: "app started 0.5" in server.output())
        server.signal(signal.SIGINT)
        client.join(WAIT)
        assert server.wait() == 0
    assert result == [b"slept"]
    assert "shutting down gracefully" in server.output()


def test_second_signal_forces_exit():
    with CLIServer("tests.apps.basic:announced_slow", "--port", "0", "--graceful-timeout", "60") as server:
        server.wait_listening()
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as sock:
            sock.sendall(b"GET /?30 HTTP/1.1\r\nHost: t\r\n\r\n")
            assert wait_for(lambda: "app started 30" in server.output())
            server.signal(signal.SIGTERM)
            assert wait_for(lambda: "shutting down gracefully" in server.output())
            assert server.proc.poll() is None  # still draining the 30 s request
            server.signal(signal.SIGTERM)
            assert server.wait() == 1
            assert Reader(sock).closed()


def test_no_access_log():
    with CLIServer("tests.apps.basic:hello", "--port", "0", "--no-access-log") as server:
        server.wait_listening()
        assert _get(server.port) == b"Hello, world!"
        server.signal()
        assert server.wait() == 0
    assert "GET / HTTP/1.1" not in server.output()


def test_log_level_warning_hides_info():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        fd = listener.fileno()
        args = ("tests.apps.basic:hello", "--fd", str(fd), "--log-level", "warning", "--no-access-log")
        with CLIServer(*args, pass_fds=(fd,)) as server:
            # No startup line at this level: the answer to a request shows it is up.
            assert _get(listener.getsockname()[1]) == b"Hello, world!"
            server.signal()
            assert server.wait() == 0
    assert "listening" not in server.output()
    assert "stopped" not in server.output()


def test_factory_dotted_attr_and_app_dir():
    with CLIServer("tests.apps.basic:hello_factory", "--factory", "--port", "0") as server:
        assert _get(server.wait_listening().port) == b"Hello, world!"
    with CLIServer("tests.apps.basic:Nested.Inner.app", "--port", "0") as server:
        assert _get(server.wait_listening().port) == b"Hello, world!"
    with CLIServer("hello:app", "--app-dir", "examples", "--port", "0") as server:
        assert _get(server.wait_listening().port) == b"Hello, world!"


def test_unix_socket_listener():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.sock")
        with CLIServer("tests.apps.basic:hello", "--uds", path) as server:
            server.wait_listening()
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(WAIT)
                sock.connect(path)
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert Reader(sock).response().body == b"Hello, world!"
            server.signal()
            assert server.wait() == 0
        assert not os.path.exists(path)  # the socket file is removed on shutdown


def test_inherited_fd_listener():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    try:
        with CLIServer("tests.apps.basic:hello", "--fd", str(fd), pass_fds=(fd,)) as server:
            server.wait_listening()
            assert server.port == port
            assert _get(port) == b"Hello, world!"
            server.signal()
            assert server.wait() == 0
    finally:
        listener.close()


def test_boolean_flags_that_default_off_take_no_value():
    from asyncwsgi.process.cli import config_from_args

    config = config_from_args(build_parser().parse_args(["x:y", "--proxy-headers"]), {})
    assert config.proxy_headers is True
    assert config_from_args(build_parser().parse_args(["x:y"]), {}).proxy_headers is False


def test_parser_defaults_match_config():
    from asyncwsgi.process.cli import config_from_args

    assert config_from_args(build_parser().parse_args(["x:y"]), {}) == Config()


def test_repeatable_bind_collects_every_listener():
    from asyncwsgi.process.cli import config_from_args

    args = build_parser().parse_args(["x:y", "--bind", "127.0.0.1:1", "--bind", "unix:/tmp/a.sock"])
    assert config_from_args(args, {}).bind == ("127.0.0.1:1", "unix:/tmp/a.sock")


def test_docs_list_exactly_the_flags_of_help():
    import re

    parser = build_parser()
    help_flags = {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
    doc = (ROOT / "docs" / "running.md").read_text()
    table = doc[doc.index("## Every flag") : doc.index("## Stopping")]
    doc_flags = set(re.findall(r"^\| `(--[a-z][a-z-]+)", table, re.MULTILINE))
    assert doc_flags == help_flags


def test_sigterm_the_moment_listening_is_logged_drains_and_removes_the_pid_file(tmp_path):
    """Signal handling is installed before readiness is announced: a SIGTERM sent by whoever
    reads "listening on" (a supervisor, a test, systemd) drains and exits 0, never kills."""
    for attempt in range(8):
        pid_file = tmp_path / f"server-{attempt}.pid"
        proc = subprocess.Popen(
            [sys.executable, "-m", "asyncwsgi", "tests.apps.basic:hello", "--port", "0", "--pid-file", str(pid_file)],
            cwd=ROOT,
            env=dict(_clean_environ(), PYTHONUNBUFFERED="1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "listening on" in line:
                proc.send_signal(signal.SIGTERM)  # from the reading thread, at once
                break
        out, _ = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0, "".join(lines) + out
        assert "asyncwsgi stopped" in out
        assert not pid_file.exists()


def test_a_signal_while_starting_takes_effect_once_the_server_exists():
    class FakeServer:
        def __init__(self):
            self.calls = []

        def close(self):
            self.calls.append("close")

        def abort(self):
            self.calls.append("abort")

    async def scenario():
        first, second = FakeServer(), FakeServer()
        signals = _Signals(LogSetup())
        signals._on_signal(signal.SIGTERM)  # before there is a server
        assert first.calls == []
        signals.attach(first)  # type: ignore[arg-type]  # a stand-in: close() is all it needs
        assert first.calls == ["close"]
        again = _Signals(LogSetup())
        again.attach(second)  # type: ignore[arg-type]
        again._on_signal(signal.SIGINT)
        again._on_signal(signal.SIGINT)
        assert second.calls == ["close", "abort"] and again.count == 2

    asyncio.run(scenario())
