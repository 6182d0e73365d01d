"""A real HAProxy in TCP mode in front of asyncwsgi with --proxy-protocol (issue 5).

HAProxy writes PROXY v1 (``send-proxy``) or v2 (``send-proxy-v2``, and ``send-proxy-v2-ssl``
after ending TLS itself). Clients connect to it from 127.0.0.2, so the address asyncwsgi reports
can only have come from the header: HAProxy itself connects from 127.0.0.1.
Skipped when haproxy is not installed; .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Optional

import pytest
import trustme

from tests.apps import basic
from tests.helpers import WAIT, Reader, free_port, get, wait_accepting

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
if HAPROXY is None and os.environ.get("REQUIRE_HAPROXY_TESTS"):
    raise RuntimeError("REQUIRE_HAPROXY_TESTS is set (as in CI) but haproxy is not installed")
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")

CLIENT_IP = "127.0.0.2"  # any 127/8 address is the loopback on Linux


class HAProxy:
    def __init__(self, folder: Path, upstream_port: int, send: str, tls_pem: Optional[Path] = None) -> None:
        self.port = free_port()
        ssl_bind = f" ssl crt {tls_pem}" if tls_pem else ""
        conf = folder / f"haproxy-{send}.cfg"
        conf.write_text(
            f"""
global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend front
    bind 127.0.0.1:{self.port}{ssl_bind}
    default_backend app
backend app
    server app 127.0.0.1:{upstream_port} {send}
"""
        )
        self.proc = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_accepting(self.port, self.proc, "haproxy")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT, source_address=(CLIENT_IP, 0))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=WAIT)


@pytest.fixture
def haproxy(tmp_path):
    started = []

    def start(upstream_port: int, send: str, tls_pem: Optional[Path] = None) -> HAProxy:
        proxy = HAProxy(tmp_path, upstream_port, send, tls_pem)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def _environs(sock: socket.socket, count: int) -> list:
    reader = Reader(sock)
    found = []
    for _ in range(count):
        sock.sendall(get("/"))
        response = reader.response()
        assert response.status == 200, response.raw
        found.append(json.loads(response.body))
    return found


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_client_address_comes_through_haproxy(serve, haproxy, send):
    srv = serve(basic.environ_dump, proxy_protocol=True, forwarded_allow_ips="127.0.0.1")
    proxy = haproxy(srv.port, send)
    with proxy.connect() as sock:
        client_port = str(sock.getsockname()[1])
        environs = _environs(sock, 3)  # keep-alive through the proxy: one header, three requests
    for env in environs:
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == (CLIENT_IP, client_port, "http")


def test_tls_ended_at_haproxy_makes_the_scheme_https(serve, haproxy, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "haproxy.pem"
    pem.write_bytes(cert.private_key_and_cert_chain_pem.bytes())
    srv = serve(basic.environ_dump, proxy_protocol=True, forwarded_allow_ips="127.0.0.1")
    proxy = haproxy(srv.port, "send-proxy-v2-ssl", tls_pem=pem)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with proxy.connect() as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        client_port = str(sock.getsockname()[1])
        (env,) = _environs(sock, 1)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == (CLIENT_IP, client_port, "https")


def test_without_proxy_protocol_the_header_is_a_bad_request(serve, haproxy):
    srv = serve(basic.environ_dump, forwarded_allow_ips="127.0.0.1")
    proxy = haproxy(srv.port, "send-proxy")
    with proxy.connect() as sock:
        sock.sendall(get("/"))
        assert Reader(sock).response().status == 400  # misconfiguration is loud, not a wrong address
