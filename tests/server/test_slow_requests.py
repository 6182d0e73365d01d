"""--slow-request-log and the stack logged at --request-timeout: where a stuck request is,
without stopping anything; /stats lists the requests in the app."""

from __future__ import annotations

import json
import logging
import threading
from typing import List

from tests.helpers import WAIT, Reader, connect, get, request, wait_for


def stuck_in_here(release: threading.Event) -> None:
    release.wait(WAIT)


def _app(release: threading.Event):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/stuck":
            stuck_in_here(release)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return app


def _slow_lines(caplog) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "asyncwsgi.error" and "stuck" in r.getMessage()]


def test_a_slow_request_has_its_stack_logged_once(serve, caplog):
    caplog.set_level(logging.WARNING, logger="asyncwsgi.error")
    release = threading.Event()
    srv = serve(_app(release), slow_request_log=0.2)
    with connect(srv.port) as sock:
        sock.sendall(get("/stuck"))
        assert wait_for(lambda: _slow_lines(caplog))
        assert not wait_for(lambda: len(_slow_lines(caplog)) > 1, timeout=1.0)  # once per request
        release.set()
        assert Reader(sock).response().body == b"ok"  # nothing was stopped
    (line,) = _slow_lines(caplog)
    assert line.startswith("slow request: GET /stuck from 127.0.0.1")
    assert "in stuck_in_here" in line and "release.wait(WAIT)" in line  # the function it is stuck in
    assert request(srv.port, get("/fast")).body == b"ok"


def test_a_request_cut_off_at_its_deadline_has_its_stack_logged(serve, caplog):
    caplog.set_level(logging.WARNING, logger="asyncwsgi.error")
    release = threading.Event()
    srv = serve(_app(release), request_timeout=0.3)
    assert request(srv.port, get("/stuck")).status == 504
    release.set()
    (line,) = _slow_lines(caplog)
    assert "GET /stuck from 127.0.0.1" in line and "--request-timeout" in line
    assert "in stuck_in_here" in line


def test_stats_list_requests_in_the_app_with_their_age_and_thread(serve):
    release = threading.Event()
    srv = serve(_app(release), stats_path="/stats")
    with connect(srv.port) as sock:
        sock.sendall(get("/stuck"))

        def listed():
            return json.loads(request(srv.port, get("/stats")).body)["in_flight"]

        assert wait_for(lambda: len(listed()) == 1)
        (entry,) = listed()
        assert entry["method"] == "GET" and entry["path"] == "/stuck" and entry["client"] == "127.0.0.1"
        assert entry["thread"].startswith("asyncwsgi-thread-")
        assert entry["age_seconds"] >= entry["in_app_seconds"] > 0
        release.set()
        assert Reader(sock).response().body == b"ok"
    # (Its thread may write the answer before the loop counts it done.)
    assert wait_for(lambda: json.loads(request(srv.port, get("/stats")).body)["in_flight"] == [])


def test_stats_show_stacks_on_request_to_trusted_peers_only(serve):
    release = threading.Event()
    trusted = serve(_app(release), stats_path="/stats")  # --forwarded-allow-ips: 127.0.0.1
    untrusted = serve(_app(release), stats_path="/stats", forwarded_allow_ips="10.0.0.1")
    with connect(trusted.port) as sock:
        sock.sendall(get("/stuck"))

        def stacks():
            return json.loads(request(trusted.port, get("/stats?stacks=1")).body)["in_flight"]

        assert wait_for(lambda: len(stacks()) == 1)
        assert "in stuck_in_here" in stacks()[0]["stack"]
        assert "stack" not in json.loads(request(trusted.port, get("/stats")).body)["in_flight"][0]
        release.set()
        assert Reader(sock).response().body == b"ok"
    refused = request(untrusted.port, get("/stats?stacks=1"))
    assert refused.status == 403
    assert request(untrusted.port, get("/stats")).status == 200
