"""Health, readiness and stats answered by the event loop (--health-path, --ready-path, --stats-path)."""

from __future__ import annotations

import json
import re
import socket
import threading

import pytest

from asyncwsgi import Config, ConfigError
from tests.apps import basic
from tests.helpers import WAIT, Reader, get, request, wait_for

PATHS = {"health_path": "/healthz", "ready_path": "/readyz", "stats_path": "/stats"}


class Blocker:
    """An app that holds its thread until released: every thread stuck, on demand."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Semaphore(0)

    def __call__(self, environ, start_response):
        self.running.release()
        self.release.wait(WAIT)
        start_response("200 OK", [("Content-Length", "4")])
        return [b"done"]


def _send(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(head)
    return sock


def test_probes_answer_while_every_thread_is_stuck(serve):
    app = Blocker()
    srv = serve(app, threads=1, queue_size=0, **PATHS)
    stuck = _send(srv.port, get("/work"))
    assert app.running.acquire(timeout=WAIT)  # the only thread is now held by the app
    try:
        assert request(srv.port, get("/healthz")).body == b"ok\n"
        assert request(srv.port, get("/readyz")).status == 200  # busy, but no one is waiting yet
        parked = _send(srv.port, get("/work"))  # no slot: this one waits on its connection
        assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.waiting) == 1)
        ready = request(srv.port, get("/readyz"))
        assert (ready.status, ready.body) == (503, b"not ready: saturated\n")
        stats = json.loads(request(srv.port, get("/stats")).body)
        assert stats["threads"] == {"total": 1, "busy": 1, "idle": 0, "spare": 0, "stuck": 0}
        assert stats["queue"]["parked"] == 1 and stats["queue"]["oldest_seconds"] > 0
        assert stats["connections"]["in_app"] == 1 and stats["connections"]["waiting_for_thread"] == 1
        assert stats["ready"] is False
    finally:
        app.release.set()
    assert Reader(stuck).response().body == b"done"
    assert Reader(parked).response().body == b"done"
    stuck.close()
    parked.close()
    assert wait_for(lambda: request(srv.port, get("/readyz")).status == 200)


def test_stats_counts_requests_responses_and_queue_time(serve):
    srv = serve(basic.hello, **PATHS)
    for _ in range(5):
        assert request(srv.port, get("/")).status == 200
    assert request(srv.port, b"GET / HTTP/1.1\r\n\r\n").status == 400  # no Host
    stats = json.loads(request(srv.port, get("/stats")).body)
    assert stats["requests"] >= 6
    assert stats["responses"]["2xx"] >= 5 and stats["responses"]["4xx"] == 1
    histogram = stats["queue_seconds"]
    assert histogram["count"] == 5 and histogram["buckets"]["+Inf"] == 5
    counts = list(histogram["buckets"].values())
    assert counts == sorted(counts)  # cumulative
    assert set(stats["timeouts"]) == {"header", "body", "write", "queue", "idle", "request", "ws_ping"}


def test_stats_in_prometheus_text(serve):
    srv = serve(basic.hello, **PATHS)
    request(srv.port, get("/"))
    for head in (get("/stats?format=prometheus"), get("/stats", extra=b"Accept: text/plain;version=0.0.4\r\n")):
        resp = request(srv.port, head)
        assert (resp.header(b"content-type") or b"").startswith(b"text/plain; version=0.0.4")
        text = resp.body.decode()
        sample = re.compile(r'asyncwsgi_[a-z_]+(\{[a-z]+="[^"]*"\})? [0-9.e+-]+')
        for line in text.splitlines():
            assert line.startswith("# ") or sample.fullmatch(line), line
        assert "asyncwsgi_requests_total " in text and 'asyncwsgi_queue_seconds_bucket{le="+Inf"}' in text
        assert "asyncwsgi_ready 1" in text


def test_timeouts_and_disconnects_are_counted(serve):
    srv = serve(basic.hello, header_timeout=0.3, **PATHS)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")  # never finished
        assert Reader(sock).response().status == 408
    stats = json.loads(request(srv.port, get("/stats")).body)
    assert stats["timeouts"]["header"] == 1


def test_probe_paths_are_only_get_and_head_and_app_sees_the_rest(serve):
    srv = serve(basic.path_echo, **PATHS)
    head = request(srv.port, b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n", head_request=True)
    assert head.status == 200 and head.body == b""
    post = request(srv.port, b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert b"/healthz" in post.body  # the app's answer, not the probe's
    assert b"/other" in request(srv.port, get("/other")).body


def test_probes_off_by_default(serve):
    srv = serve(basic.path_echo)
    assert b"/healthz" in request(srv.port, get("/healthz")).body


@pytest.mark.parametrize(
    "options,message",
    [
        ({"health_path": "healthz"}, "--health-path must be an ASCII path"),
        ({"stats_path": "/a b"}, "--stats-path must be an ASCII path"),
        ({"health_path": "/x", "ready_path": "/x"}, "must differ"),
    ],
)
def test_bad_probe_paths_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        Config(**options)
