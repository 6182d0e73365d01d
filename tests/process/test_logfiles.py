"""Log files: --access-logfile, --error-logfile, SIGUSR1 rotation, JSON error lines, --log-config,
as real processes over real sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path
from typing import List

import pytest

from tests.helpers import Load, Reader, children, free_port, get, wait_for
from tests.proc import WAIT, CLIServer, run_cli

APP = "tests.apps.basic:hello"
# One combined line: what a request leaves in the access log, whole.
LINE = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET /n/(\d+) HTTP/1\.1" 200 \d+ "-" "-" [\d.]+ms$')


def ask(port: int, n: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(get(f"/n/{n}"))
        assert Reader(sock).response().status == 200


def numbers(*paths: Path) -> List[int]:
    """The request numbers in these access logs; every line must be whole."""
    found = []
    for path in paths:
        for line in path.read_text().splitlines():
            match = LINE.match(line)
            assert match, f"{path.name}: a line that is not whole: {line!r}"
            found.append(int(match.group(1)))
    return found


def test_access_and_error_lines_go_to_their_files(tmp_path):
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    port = free_port()
    args = ("--port", str(port), "--access-logfile", str(access), "--error-logfile", str(error))
    with CLIServer(APP, *args) as server:
        assert wait_for(lambda: error.exists() and "listening on" in error.read_text())
        for n in range(5):
            ask(port, n)
        server.signal()
        assert server.wait() == 0
    assert sorted(numbers(access)) == [0, 1, 2, 3, 4]
    assert "asyncwsgi stopped" in error.read_text()
    assert server.output() == ""  # nothing left for stderr


def test_sigusr1_reopens_the_access_log_of_one_process(tmp_path):
    access = tmp_path / "access.log"
    with CLIServer(APP, "--port", "0", "--access-logfile", str(access)) as server:
        server.wait_listening()
        ask(server.port, 1)
        assert wait_for(lambda: access.exists() and numbers(access) == [1])
        access.rename(tmp_path / "access.log.1")
        server.signal(signal.SIGUSR1)
        assert wait_for(lambda: "reopened 1 log file(s)" in server.output())
        ask(server.port, 2)
        server.signal()
        assert server.wait() == 0
    assert numbers(tmp_path / "access.log.1") == [1] and numbers(access) == [2]


@pytest.mark.slow
def test_rotation_under_load_with_workers_loses_and_splits_no_line(tmp_path):
    """logrotate's way: move the file, SIGUSR1 the supervisor; every worker reopens. Each answered
    request has exactly one whole line, in the old file or the new one."""
    access = tmp_path / "access.log"
    args = ("--port", "0", "--workers", "2", "--access-logfile", str(access))
    with CLIServer(APP, *args) as server:
        server.wait_listening()
        assert wait_for(lambda: len(children(server.pid)) == 2)
        counter = iter(range(10**9))
        load = Load(lambda: ask(server.port, (n := next(counter))) or n, threads=4)
        try:
            load.until(300)
            access.rename(tmp_path / "access.log.1")
            server.signal(signal.SIGUSR1)
            assert wait_for(lambda: server.output().count("reopened 1 log file(s)") == 3)  # supervisor + 2
            load.until(300)
        finally:
            load.stop()
        server.signal()
        assert server.wait() == 0
    assert load.failures == []
    old, new = numbers(tmp_path / "access.log.1"), numbers(access)
    assert len(new) >= 100, "the workers kept writing to the moved file"
    assert sorted(old + new) == sorted(load.answers)


def test_a_worker_still_starting_is_not_killed_by_sigusr1(tmp_path):
    """The supervisor passes SIGUSR1 on only once a worker serves (its default action ends a
    process); a worker that starts meanwhile gets it when it is ready."""
    access = tmp_path / "access.log"
    with CLIServer(APP, "--port", "0", "--workers", "2", "--access-logfile", str(access)) as server:
        assert wait_for(lambda: "starting 2 workers" in server.output(), timeout=WAIT)
        server.signal(signal.SIGUSR1)  # at once: the workers are still importing
        server.wait_listening()
        assert wait_for(lambda: server.output().count("reopened 1 log file(s)") == 3)
        workers = children(server.pid)
        assert len(workers) == 2 and "exited" not in server.output()
        server.signal()
        assert server.wait() == 0


def test_json_error_lines(tmp_path):
    with CLIServer(APP, "--port", "0", "--error-log-format", "json", "--no-access-log") as server:
        assert wait_for(lambda: any("listening on" in line for line in server.lines))
        server.signal()
        assert server.wait() == 0
    records = [json.loads(line) for line in server.lines]  # every line is one JSON object
    listening = next(r for r in records if "listening on" in r["message"])
    assert listening["level"] == "INFO" and listening["logger"] == "asyncwsgi.error"
    assert listening["pid"] == server.pid and listening["time"].endswith("Z")


def test_a_traceback_stays_inside_its_json_record(tmp_path):
    port = free_port()
    args = ("--port", str(port), "--error-log-format", "json", "--no-access-log")
    with CLIServer("tests.apps.basic:boom", *args) as server:
        assert wait_for(lambda: any("listening on" in line for line in server.lines))
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(get("/"))
            assert Reader(sock).response().status == 500
        assert wait_for(lambda: any("Traceback" in line for line in server.lines))
        server.signal()
        assert server.wait() == 0
    records = [json.loads(line) for line in server.lines]
    failed = next(r for r in records if "exception" in r)
    assert failed["level"] == "ERROR" and "Traceback (most recent call last)" in failed["exception"]


def test_log_config_json(tmp_path):
    target = tmp_path / "all.log"
    settings = {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(target), "formatter": "plain"}},
        "loggers": {
            "asyncwsgi.error": {"handlers": ["file"], "level": "INFO", "propagate": False},
            "asyncwsgi.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }
    (tmp_path / "logging.json").write_text(json.dumps(settings))
    port = free_port()
    with CLIServer(APP, "--port", str(port), "--log-config", str(tmp_path / "logging.json")) as server:
        assert wait_for(lambda: target.exists() and "listening on" in target.read_text())
        ask(port, 7)
        assert wait_for(lambda: '"GET /n/7 HTTP/1.1" 200' in target.read_text())
        server.signal()
        assert server.wait() == 0
    assert "asyncwsgi.access 127.0.0.1" in target.read_text()


@pytest.mark.parametrize(
    "args,code,message",
    [
        (("--access-logfile", "/nonexistent/dir/access.log"), 1, "cannot open a log file"),
        (("--error-logfile", "/nonexistent/dir/error.log"), 1, "cannot open a log file"),
        (("--access-logfile", "x.log", "--no-access-log"), 2, "--access-logfile is given with --no-access-log"),
        (("--log-config", "missing.json"), 2, "--log-config missing.json"),
        (("--log-config", "x.ini", "--error-logfile", "e.log"), 2, "cannot be combined with --log-config"),
        (("--error-log-format", "xml"), 2, "--error-log-format"),
    ],
)
def test_log_options_that_cannot_work_are_one_line_errors(args, code, message):
    result = run_cli(APP, "--port", "0", *args)
    assert result.returncode == code and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 or result.stderr.startswith("usage:")


def test_the_embed_api_refuses_log_options():
    import asyncio

    from asyncwsgi import start_server
    from asyncwsgi.errors import ConfigError
    from tests.apps.basic import hello

    async def scenario() -> None:
        with pytest.raises(ConfigError, match="--access-logfile"):
            await start_server(hello, port=0, access_logfile="a.log")

    asyncio.run(scenario())
    assert not os.path.exists("a.log")
