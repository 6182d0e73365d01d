"""A real nginx in front of asyncwsgi, over TCP and over a Unix socket (issue 5).

The nginx config here is the one docs/deployment.md recommends, so the docs are tested too.
Skipped when nginx is not installed; .ci/run installs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.apps import basic, big
from tests.helpers import WAIT, Load, children, free_port, wait_accepting, wait_for
from tests.proc import ROOT, CLIServer

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
if NGINX is None and os.environ.get("REQUIRE_NGINX_TESTS"):
    raise RuntimeError("REQUIRE_NGINX_TESTS is set (as in CI) but nginx is not installed")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")

# The map and the location block from docs/deployment.md, verbatim.
MAP = """
    map $http_upgrade $connection_upgrade {
        default upgrade;
        ""      "";
    }
"""
LOCATION = """
        location / {
            proxy_pass http://asyncwsgi;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
            proxy_buffering off;
            client_max_body_size 100m;
        }
"""


class Nginx:
    def __init__(self, folder: Path, upstream: str, workers: int = 0) -> None:
        """``workers``: 0 runs nginx as one process; N runs a master with N workers, so that a
        SIGHUP is nginx's graceful reload (new workers, old ones finish their requests)."""
        self.port = free_port()
        conf = folder / "nginx.conf"
        temp = {name: folder / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        conf.write_text(
            f"""
daemon off;
master_process {"on" if workers else "off"};
worker_processes {workers or 1};
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{MAP}
    upstream asyncwsgi {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{self.port};
{LOCATION}
    }}
}}
"""
        )
        self.proc = subprocess.Popen(
            [str(NGINX), "-c", str(conf), "-p", str(folder), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_accepting(self.port, self.proc, "nginx")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=WAIT)

    def workers(self) -> set:
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return {int(pid) for pid in f.read().split()}


@pytest.fixture
def nginx(tmp_path):
    started = []

    def start(upstream: str, workers: int = 0) -> Nginx:
        proxy = Nginx(tmp_path, upstream, workers)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def test_tcp_upstream_keeps_connections_alive(serve, nginx):
    srv = serve(basic.environ_dump)
    proxy = nginx(f"127.0.0.1:{srv.port}")
    with httpx.Client(base_url=proxy.url, timeout=WAIT) as client:
        dumps = [client.get(f"/item/{i}", headers={"Host": "shop.example"}).json() for i in range(20)]
    assert all(d["HTTP_HOST"] == "shop.example" and d["REMOTE_ADDR"] == "127.0.0.1" for d in dumps)
    assert [d["PATH_INFO"] for d in dumps] == [f"/item/{i}" for i in range(20)]
    # nginx reuses its upstream connections (keepalive 16): one or two, not one per request.
    ports = {d["REMOTE_PORT"] for d in dumps}
    assert 1 <= len(ports) <= 2, ports


def test_tcp_upstream_proxy_headers_from_trusted_nginx(serve, nginx):
    srv = serve(basic.environ_dump, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    proxy = nginx(f"127.0.0.1:{srv.port}")
    env = httpx.get(proxy.url + "/", timeout=WAIT).json()
    assert env["HTTP_X_FORWARDED_FOR"] == "127.0.0.1" and env["REMOTE_ADDR"] == "127.0.0.1"
    assert "REMOTE_PORT" not in env  # the port was nginx's, not the client's


def test_unix_socket_upstream_trusts_only_nginx(serve, nginx, tmp_path):
    path = str(tmp_path / "app.sock")
    srv = serve(basic.environ_dump, bind=(f"unix:{path}",), proxy_headers=True, forwarded_allow_ips="unix")
    proxy = nginx(f"unix:{path}")
    reply = httpx.get(proxy.url + "/", headers={"X-Forwarded-For": "6.6.6.6"}, timeout=WAIT)
    env = reply.json()
    # nginx appended the real client (127.0.0.1) to the spoofed value; only nginx is trusted, so
    # the right-most hop it reported is the client and the spoof is ignored.
    assert env["HTTP_X_FORWARDED_FOR"] == "6.6.6.6, 127.0.0.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert srv.server is not None


def _hash_app(environ, start_response):
    digest = hashlib.sha256()
    size = 0
    stream = environ["wsgi.input"]
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        size += len(chunk)
        digest.update(chunk)
    body = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def test_large_upload_and_download_through_nginx(serve, nginx):
    upload = serve(_hash_app)
    download = serve(big.download)
    data = os.urandom(1 << 20) * 24  # 24 MiB
    proxy = nginx(f"127.0.0.1:{upload.port}")
    reply = httpx.post(proxy.url + "/", content=data, timeout=WAIT * 2)
    assert reply.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    proxy.stop()
    proxy = nginx(f"127.0.0.1:{download.port}")
    with httpx.stream("GET", proxy.url + "/?32", timeout=WAIT * 2) as response:
        total = sum(len(chunk) for chunk in response.iter_bytes())
    assert response.status_code == 200 and total == 32 << 20


def _refuse_without_reading(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not found\n"]


def test_a_large_unread_body_through_nginx_is_answered_not_502(serve, nginx):
    """A 30 MB PUT the app answers without reading: nginx must get the 404, not a reset while it
    is still sending (which it reports as 502). Before the fix, 77 of 120 tries failed."""
    srv = serve(_refuse_without_reading)
    proxy = nginx(f"127.0.0.1:{srv.port}")
    data = b"x" * (30 * 1000 * 1000)
    with httpx.Client(base_url=proxy.url, timeout=WAIT * 2) as client:
        statuses = [client.put("/missing", content=data).status_code for _ in range(12)]
        assert client.get("/missing").status_code == 404  # and the upstream is still fine
    assert statuses == [404] * 12


def test_host_with_a_port_reaches_the_app(serve, nginx):
    """docs/deployment.md sends Host $http_host: the port a client used survives (Django's CSRF
    origin check needs it); nginx's $host would drop it."""
    srv = serve(basic.environ_dump)
    proxy = nginx(f"127.0.0.1:{srv.port}")
    env = httpx.get(proxy.url + "/", headers={"Host": "shop.example:8443"}, timeout=WAIT).json()
    assert env["HTTP_HOST"] == "shop.example:8443"


def test_chunked_upload_through_nginx_reaches_the_app_whole(serve, nginx):
    srv = serve(_hash_app)
    proxy = nginx(f"127.0.0.1:{srv.port}")
    parts = [os.urandom(100_000) for _ in range(10)]
    reply = httpx.post(proxy.url + "/", content=iter(parts), timeout=WAIT)  # a generator: chunked
    joined = b"".join(parts)
    assert reply.json() == {"size": len(joined), "sha256": hashlib.sha256(joined).hexdigest()}


def test_deployment_doc_shows_the_tested_location_block():
    doc = (ROOT / "docs" / "deployment.md").read_text()
    documented = [line.strip() for line in doc.splitlines()]
    for block in (MAP, LOCATION):
        tested = [line.strip() for line in block.strip().splitlines()]
        start = documented.index(tested[0])
        assert documented[start : start + len(tested)] == tested


def test_a_websocket_to_a_mounted_app_passes_through_nginx(tmp_path, nginx):
    """The same location serves the WSGI app with upstream keep-alive and upgrades WebSockets
    for a --mount: the Upgrade header passes, and Connection is "upgrade" only for them."""
    from websockets.sync.client import connect as ws_connect

    args = ("tests.apps.websocket_echo:wsgi_app", "--port", "0", "--mount", "/ws=tests.apps.websocket_echo:app")
    with CLIServer(*args) as server:
        server.wait_listening()
        proxy = nginx(f"127.0.0.1:{server.port}")
        with httpx.Client(base_url=proxy.url, timeout=WAIT) as client:
            assert client.get("/").text == "ok\n"
        with ws_connect(f"ws://127.0.0.1:{proxy.port}/ws/echo", open_timeout=WAIT) as ws:
            ws.send("through nginx")
            assert ws.recv(timeout=WAIT) == "through nginx"
            ws.send(b"\x00\x01" * 40000)  # 80 KB: more than one of nginx's proxy buffers
            assert ws.recv(timeout=WAIT) == b"\x00\x01" * 40000
        with httpx.Client(base_url=proxy.url, timeout=WAIT) as client:
            assert client.get("/").text == "ok\n"  # plain requests still kept alive upstream
        server.signal()
        assert server.wait() == 0


def _pid_through(url: str):
    """Ask for a worker's pid through nginx, each time on a fresh client connection (so a failure
    can only come from nginx or behind it); one httpx client per load thread."""
    clients = threading.local()

    def ask() -> int:
        if not hasattr(clients, "client"):
            clients.client = httpx.Client(timeout=WAIT, headers={"Connection": "close"})
        reply = clients.client.get(url)
        assert reply.status_code == 200, f"{reply.status_code} {reply.text[:200]}"
        return int(reply.text)

    return ask


@pytest.mark.slow
def test_nginx_graceful_reload_under_load_fails_no_request(nginx):
    server = CLIServer("tests.process.test_gunicorn:pid_app", "--port", "0", "--no-access-log").wait_listening()
    with server:
        proxy = nginx(f"127.0.0.1:{server.port}", workers=2)
        assert wait_for(lambda: len(proxy.workers()) == 2)
        load = Load(_pid_through(proxy.url + "/"), threads=4)
        try:
            load.until(100)
            for _ in range(3):
                before = proxy.workers()
                proxy.proc.send_signal(signal.SIGHUP)  # nginx -s reload
                assert wait_for(lambda: len(proxy.workers() - before) == 2)  # noqa: B023  (waited on here)
                load.until(100)
        finally:
            load.stop()
        assert load.failures == []


@pytest.mark.slow
def test_asyncwsgi_reload_behind_nginx_under_load_fails_no_request(nginx, tmp_path):
    """SIGHUP to our supervisor while nginx holds keep-alive connections to the old workers.

    nginx's few upstream connections may all be hashed to one worker's socket, so which pids
    answer varies; a generation is therefore the supervisor's children at the signal, not the
    pids seen so far. What must hold is that after each reload only new workers answer, and
    that no request fails meanwhile."""
    server = CLIServer(
        "tests.process.test_gunicorn:pid_app", "--port", "0", "--no-access-log", "--workers", "2"
    ).wait_listening()
    with server:
        assert wait_for(lambda: len(children(server.pid)) == 2)
        proxy = nginx(f"127.0.0.1:{server.port}")
        load = Load(_pid_through(proxy.url + "/"), threads=4)
        generations: list = []
        slow_answers: list = []

        arrived = tmp_path / "arrived"

        def slow() -> None:  # held 3 s: still in an old worker when it is told to drain
            slow_answers.append(_pid_through(f"{proxy.url}/?3,{arrived}")())

        try:
            load.until(100)
            for round_number in range(2):
                old, start = children(server.pid), len(load.answers)
                assert set(load.answers) <= set().union(old, *generations)
                generations.append(old)
                if round_number == 0:
                    slow_threads = [threading.Thread(target=slow) for _ in range(4)]
                    for thread in slow_threads:
                        thread.start()
                    assert wait_for(lambda: arrived.exists() and len(arrived.read_text().split()) == 4)
                server.signal(signal.SIGHUP)

                def replaced(old: set = old, start: int = start) -> bool:
                    # 20 answers since the signal, and the latest 20 all from new workers.
                    return len(load.answers) >= start + 20 and set(load.answers[-20:]).isdisjoint(old)

                assert wait_for(replaced, timeout=WAIT * 2), server.output()
                load.until(100)
        finally:
            load.stop()
        for thread in slow_threads:
            thread.join(WAIT)
        assert load.failures == []
        assert set(load.answers) - set().union(*generations)  # the last generation answered too
        # Finished by the old workers, not failed and retried by nginx on a new one.
        assert len(slow_answers) == 4 and set(slow_answers) <= generations[0], (slow_answers, generations[0])
