"""--reload: the change watcher on its own, then the command restarting a real app on edits."""

from __future__ import annotations

import os
import select
import socket
import sys
from pathlib import Path
from typing import List

import pytest

from asyncwsgi.errors import ConfigError
from asyncwsgi.process.reloader import ChangeWatcher, PathFilter, _choose
from tests.helpers import Load, Reader, get, wait_for
from tests.proc import WAIT, CLIServer, run_cli

BACKENDS = ["polling", "watchfiles"]


# --- which paths count ---------------------------------------------------------------------------


def test_filter_matches_included_names_outside_excluded_parts(tmp_path):
    accept = PathFilter([str(tmp_path)], ["*.py", "*.html"], ["build"])
    assert accept(str(tmp_path / "app.py"))
    assert accept(str(tmp_path / "pkg" / "templates" / "index.html"))
    assert not accept(str(tmp_path / "notes.txt"))
    assert not accept(str(tmp_path / "__pycache__" / "app.py"))
    assert not accept(str(tmp_path / "app.pyc"))
    assert not accept(str(tmp_path / ".git" / "hooks" / "x.py"))
    assert not accept(str(tmp_path / ".venv" / "lib" / "site.py"))
    assert not accept(str(tmp_path / "venv" / "lib" / "site.py"))
    assert not accept(str(tmp_path / "build" / "gen.py"))  # the user's --reload-exclude
    assert not accept(str(tmp_path.parent / "elsewhere.py"))  # not under a root


def test_filter_ignores_hidden_directories_above_the_root(tmp_path):
    root = tmp_path / ".local" / "src" / "project"
    accept = PathFilter([str(root)], ["*.py"], [])
    assert accept(str(root / "app.py"))


# --- the watcher ---------------------------------------------------------------------------------


def _next_changes(watcher: ChangeWatcher) -> List[str]:
    readable, _, _ = select.select([watcher.fileno()], [], [], WAIT)
    assert readable, "no change reported"
    changed: List[str] = []
    # One editor save can arrive as several reports; collect what comes within a short while.
    while True:
        changed += watcher.take()
        readable, _, _ = select.select([watcher.fileno()], [], [], 0.8)
        if not readable:
            return sorted(set(changed))


@pytest.fixture(params=BACKENDS)
def watched(request, tmp_path):
    (tmp_path / "app.py").write_text("v = 1\n")
    (tmp_path / "__pycache__").mkdir()
    # Made before watching starts: a file created at once inside a brand-new directory can beat
    # the new directory's inotify watch (a later edit of it is seen).
    (tmp_path / "pkg").mkdir()
    watcher = ChangeWatcher([str(tmp_path)], ["*.py"], (), backend=request.param)
    assert watcher.backend == request.param
    watcher.start()
    yield tmp_path, watcher
    watcher.close()


def test_watcher_reports_a_modified_file_and_nothing_else(watched):
    root, watcher = watched
    (root / "notes.txt").write_text("not code")
    (root / "__pycache__" / "app.cpython.py").write_text("cache")
    (root / "app.py").write_text("v = 22\n")
    assert _next_changes(watcher) == [str(root / "app.py")]
    assert watcher.take() == []


def test_watcher_reports_created_and_deleted_files(watched):
    root, watcher = watched
    (root / "pkg" / "new.py").write_text("x = 1\n")
    assert _next_changes(watcher) == [str(root / "pkg" / "new.py")]
    (root / "app.py").unlink()
    assert _next_changes(watcher) == [str(root / "app.py")]


def test_watcher_is_quiet_while_nothing_changes(watched):
    _, watcher = watched
    readable, _, _ = select.select([watcher.fileno()], [], [], 1.2)  # more than two polls
    assert not readable
    assert watcher.take() == []


def test_watcher_refuses_a_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"--reload-dir .* is not a directory"):
        ChangeWatcher([str(tmp_path / "missing")], ["*.py"])


def test_backend_falls_back_to_polling_without_watchfiles(monkeypatch):
    assert _choose("auto") == "watchfiles"  # a test dependency
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import now raises ImportError
    assert _choose("auto") == "polling"
    with pytest.raises(ConfigError, match=r"pip install 'asyncwsgi\[reload\]'"):
        _choose("watchfiles")


# --- the command ---------------------------------------------------------------------------------

APP_SOURCE = """\
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{version} %d" % os.getpid()]
"""


def _ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(get("/"))
        return Reader(sock).response().body.decode()


def _start(app_dir: Path, *extra: str, env=None) -> CLIServer:
    # No bytecode cache: an edit within the same second and of the same size must not load a stale .pyc.
    server = CLIServer(
        "reloadable:app",
        "--app-dir",
        str(app_dir),
        "--reload",
        "--port",
        "0",
        "--no-access-log",
        *extra,
        env={"PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
    )
    return server.wait_listening()


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # as editors save: the new file appears whole


def test_reload_serves_the_edited_app_without_refusing_a_request(tmp_path):
    source = tmp_path / "reloadable.py"
    source.write_text(APP_SOURCE.format(version="v1"))
    with _start(tmp_path) as server:
        first = _ask(server.port)
        assert first.startswith("v1 ")
        load = Load(lambda: _ask(server.port))
        try:
            assert wait_for(lambda: len(load.answers) > 5)
            _write(source, APP_SOURCE.format(version="v2"))
            assert wait_for(lambda: load.answers and load.answers[-1].startswith("v2 "), timeout=WAIT)
            settled = len(load.answers)
            assert wait_for(lambda: len(load.answers) > settled + 5)
        finally:
            load.stop()
        assert load.failures == []
        assert all(body.startswith("v2 ") for body in load.answers[settled:])
        assert _ask(server.port).split()[1] != first.split()[1]  # a fresh worker process
        assert wait_for(lambda: "reloadable.py changed; restarting the workers" in server.output())
        assert "(watchfiles)" in server.output()


def _status_and_body(port: int):
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(get("/"))
        response = Reader(sock).response()
        return response.status, response.body.decode()


def test_reload_shows_an_import_error_until_the_fix(tmp_path):
    source = tmp_path / "reloadable.py"
    source.write_text(APP_SOURCE.format(version="v1"))
    with _start(tmp_path) as server:
        assert _ask(server.port).startswith("v1 ")
        _write(source, "def app(:\n")
        assert wait_for(lambda: _status_and_body(server.port)[0] == 500, interval=0.1)
        status, body = _status_and_body(server.port)
        assert status == 500
        assert "asyncwsgi --reload: error while importing 'reloadable'" in body
        assert 'reloadable.py", line 1' in body and "SyntaxError" in body  # the traceback
        # (the log line reaches our pipe through the supervisor, maybe after the answer)
        assert wait_for(lambda: "answering 500 with the traceback until a file changes" in server.output())
        restarts = server.output().count("listening on")
        # Nothing restarts while nothing changes (it would only fail again).
        assert not wait_for(lambda: server.output().count("listening on") > restarts, timeout=1.5)
        _write(source, APP_SOURCE.format(version="v3"))
        assert wait_for(lambda: _status_and_body(server.port)[1].startswith("v3 "), interval=0.1)
        server.signal()
        assert server.wait() == 0


def test_reload_polls_when_watchfiles_is_missing(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "watchfiles.py").write_text("raise ImportError('not installed here')\n")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    source = app_dir / "reloadable.py"
    source.write_text(APP_SOURCE.format(version="v1"))
    with _start(app_dir, env={"PYTHONPATH": str(shadow)}) as server:
        assert "(polling)" in server.output()
        assert _ask(server.port).startswith("v1 ")
        _write(source, APP_SOURCE.format(version="v2"))
        assert wait_for(lambda: _ask(server.port).startswith("v2 "), interval=0.1)


def test_reload_dir_must_exist(tmp_path):
    result = run_cli("tests.apps.basic:hello", "--reload", "--reload-dir", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"asyncwsgi: error: --reload-dir {str(tmp_path / 'nope')!r} is not a directory"
    ]


def test_a_failing_watchfiles_falls_back_to_polling(tmp_path, monkeypatch):
    import watchfiles

    def broken(*args, **kwargs):
        raise OSError("OS file watch limit reached")
        yield  # a generator, as watchfiles.watch is

    monkeypatch.setattr(watchfiles, "watch", broken)
    (tmp_path / "app.py").write_text("v = 1\n")
    watcher = ChangeWatcher([str(tmp_path)], ["*.py"], (), backend="watchfiles")
    try:
        watcher.start()
        assert wait_for(lambda: watcher.backend == "polling")
        (tmp_path / "app.py").write_text("v = 22\n")
        assert _next_changes(watcher) == [str(tmp_path / "app.py")]
    finally:
        watcher.close()
