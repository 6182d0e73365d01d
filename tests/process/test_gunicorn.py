"""asyncwsgi.gunicorn.Worker under a real gunicorn arbiter: several processes, kill -9, recycling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import children, free_port, wait_for
from tests.proc import ROOT, WAIT

pytest.importorskip("gunicorn")


def pid_app(environ, start_response):
    """Answers with the worker's process id. ``?SECONDS`` first holds the request that long, and
    ``?SECONDS,PATH`` also appends a line to PATH on arrival, so a test can see it in flight."""
    query = environ.get("QUERY_STRING", "")
    if query:
        seconds, _, arrived = query.partition(",")
        if arrived:
            with open(arrived, "a") as marker:
                marker.write(f"{os.getpid()}\n")
        time.sleep(float(seconds))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Gunicorn:
    def __init__(self, *args: str, app: str = "tests.process.test_gunicorn:pid_app", env=None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-k",
                "asyncwsgi.gunicorn.Worker",
                "-b",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "5",
                *args,
                app,
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=WAIT)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()[1]
            try:
                if self.client.get("/").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not start")

    def pids(self, requests: int = 60) -> set:
        """Worker pids seen over fresh connections (each request on its own connection)."""
        seen = set()
        for _ in range(requests):
            reply = httpx.get(f"http://127.0.0.1:{self.port}/", timeout=WAIT)
            assert reply.status_code == 200
            seen.add(int(reply.text))
        return seen

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode


def test_workers_serve_and_sigterm_stops_cleanly():
    server = Gunicorn("-w", "2", "--threads", "4")
    try:
        assert 1 <= len(server.pids()) <= 2
        for _ in range(5):
            assert server.client.get("/").status_code == 200  # keep-alive on one connection
    finally:
        code = server.stop()
    assert code == 0, server.stderr
    assert "Traceback" not in server.stderr


def test_killed_worker_is_replaced_and_requests_keep_succeeding():
    server = Gunicorn("-w", "2")
    try:
        # One worker answering is not both forked: the arbiter spawns them one by one.
        assert wait_for(lambda: len(children(server.proc.pid)) == 2)
        workers = children(server.proc.pid)
        victim = next(iter(server.pids()))
        os.kill(victim, signal.SIGKILL)
        # Requests keep succeeding (the other worker takes them) while the arbiter replaces it.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert victim not in server.pids(5)
            current = children(server.proc.pid)
            if len(current) == 2 and victim not in current:
                break
        replaced = children(server.proc.pid)
        assert len(replaced) == 2 and victim not in replaced
        assert len(replaced - workers) == 1  # one new worker; the survivor is still there
    finally:
        server.stop()


def test_max_requests_recycles_the_worker():
    server = Gunicorn("-w", "1", "--max-requests", "10", "--max-requests-jitter", "0")
    try:
        first = server.pids(5)
        deadline = time.monotonic() + WAIT
        seen = set(first)
        while time.monotonic() < deadline and len(seen) < 2:
            try:
                seen |= server.pids(5)
            except httpx.TransportError:
                time.sleep(0.05)  # between the old worker leaving and the new one starting
        assert len(seen) >= 2  # a new worker process took over
    finally:
        server.stop()


def test_gunicorn_settings_map_to_config():
    from gunicorn.config import Config as GunicornConfig

    from asyncwsgi.process.gunicorn_worker import config_from_gunicorn

    cfg = GunicornConfig()
    for name, value in [
        ("threads", 6),
        ("keepalive", 9),
        ("graceful_timeout", 12),
        ("limit_request_fields", 50),
        ("worker_connections", 500),
        ("accesslog", "-"),
        ("access_log_format", '%(h)s "%(r)s" %(s)s'),
    ]:
        cfg.set(name, value)
    config = config_from_gunicorn(cfg, [7])
    assert config.bind == ("fd://7",) and config.threads == 6 and config.keep_alive == 9.0
    assert config.graceful_timeout == 12.0 and config.max_header_count == 50 and config.max_connections == 500
    assert config.access_log and config.access_log_format == '%(h)s "%(r)s" %(s)s'
    assert not config.proxy_protocol
    # gunicorn's default trust: proxy headers from the local host only.
    assert config.proxy_headers and config.forwarded_allow_ips == "127.0.0.1,::1"
    cfg.set("forwarded_allow_ips", "10.0.0.1, 10.1.0.0/16")
    assert config_from_gunicorn(cfg, [7]).forwarded_allow_ips == "10.0.0.1,10.1.0.0/16"


def test_asyncwsgi_variables_fill_what_gunicorn_has_no_setting_for():
    from gunicorn.config import Config as GunicornConfig

    from asyncwsgi.process.gunicorn_worker import config_from_gunicorn

    cfg = GunicornConfig()
    cfg.set("threads", 6)
    environ = {"ASYNCWSGI_REQUEST_TIMEOUT": "20", "ASYNCWSGI_THREADS": "99", "ASYNCWSGI_SLOW_REQUEST_LOG": "5"}
    config = config_from_gunicorn(cfg, [7], environ)
    assert config.request_timeout == 20.0 and config.slow_request_log == 5.0
    assert config.threads == 6  # gunicorn's own setting wins


def test_gunicorn_proxy_protocol_maps_with_its_allow_list():
    from gunicorn.config import Config as GunicornConfig

    from asyncwsgi.process.gunicorn_worker import config_from_gunicorn

    cfg = GunicornConfig()
    cfg.set("proxy_protocol", True)
    cfg.set("proxy_allow_ips", "10.0.0.1, 10.1.0.0/16")
    config = config_from_gunicorn(cfg, [7])
    assert config.proxy_protocol
    assert config.forwarded_allow_ips == "10.0.0.1,10.1.0.0/16"


@pytest.mark.parametrize("trusted", [True, False])
def test_gunicorn_forwarded_allow_ips_decides_whom_proxy_headers_are_believed_from(trusted):
    # Behind a local nginx that ends TLS, gunicorn's apps see https; so must ours, and only then.
    allow = [] if trusted else ["--forwarded-allow-ips", "10.9.9.9"]
    server = Gunicorn("-w", "1", *allow, app="tests.apps.basic:environ_dump")
    try:
        reply = server.client.get("/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
        environ = reply.json()
    finally:
        server.stop()
    if trusted:  # gunicorn's default forwarded_allow_ips: 127.0.0.1 and ::1
        assert environ["wsgi.url_scheme"] == "https" and environ["REMOTE_ADDR"] == "203.0.113.9"
    else:
        assert environ["wsgi.url_scheme"] == "http" and environ["REMOTE_ADDR"] == "127.0.0.1"
        assert "HTTP_X_FORWARDED_PROTO" not in environ  # stripped: the app can't be fooled either


def test_asyncwsgi_mount_comes_from_the_environment_under_gunicorn():
    """gunicorn has no setting for mounts: ASYNCWSGI_MOUNT gives them, as for the command."""
    from websockets.sync.client import connect as ws_connect

    server = Gunicorn("-w", "1", env={"ASYNCWSGI_MOUNT": "/async=tests.apps.starlette_app:app"})
    try:
        reply = server.client.get("/async/hello/g")
        assert (reply.status_code, reply.text) == (200, "asgi hello g /async/hello/g")
        with ws_connect(f"ws://127.0.0.1:{server.port}/async/socket", open_timeout=WAIT) as ws:
            ws.send("hi")
            assert ws.recv(WAIT) == "echo hi"
    finally:
        code = server.stop()
    assert code == 0, server.stderr
