"""HTTPS: --certfile and friends, over real sockets, on both loops. Certificates from trustme."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time

import httpx
import pytest
import trustme

from asyncwsgi import Config, ConfigError
from asyncwsgi.server.tls import make_ssl_context
from tests.apps import basic
from tests.helpers import WAIT, Reader, get, wait_for
from tests.proc import run_cli


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.org")
    paths = {
        "ca": folder / "ca.pem",
        "cert": folder / "server.pem",
        "key": folder / "server.key",
        "client": folder / "client.pem",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(paths["cert"]), append=True)
    server.private_key_pem.write_to_path(str(paths["key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(paths["client"]))
    return {name: str(path) for name, path in paths.items()}


def _client_context(pki, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.set_alpn_protocols(["h2", "http/1.1"])  # as a browser offers: we must pick HTTP/1.1
    if with_cert:
        context.load_cert_chain(pki["client"])
    return context


def _tls_get(port: int, context: ssl.SSLContext, path: str = "/"):
    with (
        socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.selected_alpn_protocol() == "http/1.1"
        sock.sendall(get(path))
        return Reader(sock).response()


def test_https_request_and_url_scheme(serve, pki):
    srv = serve(basic.environ_dump, certfile=pki["cert"], keyfile=pki["key"])
    resp = _tls_get(srv.port, _client_context(pki))
    assert resp.status == 200
    assert json.loads(resp.body)["wsgi.url_scheme"] == "https"
    with httpx.Client(verify=_client_context(pki)) as client:  # a real HTTP client over TLS, keep-alive
        for _ in range(3):
            reply = client.get(f"https://127.0.0.1:{srv.port}/p")
            assert reply.status_code == 200 and reply.json()["PATH_INFO"] == "/p"


def test_plain_http_to_tls_port_costs_nothing(serve, pki, caplog):
    caplog.set_level(logging.DEBUG)
    srv = serve(basic.hello, certfile=pki["cert"], keyfile=pki["key"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
        sock.sendall(get("/"))
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 200")  # no response to a cleartext request
    assert _tls_get(srv.port, _client_context(pki)).status == 200  # the server is fine
    assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.gate.open) == 0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_handshake_deadline_is_the_header_timeout(serve, pki):
    srv = serve(basic.hello, certfile=pki["cert"], keyfile=pki["key"], header_timeout=0.5)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server: never sent a ClientHello
        elapsed = time.monotonic() - started
    assert 0.4 <= elapsed <= 3.0
    assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.gate.open) == 0)


def test_client_certificate_required(serve, pki):
    srv = serve(basic.hello, certfile=pki["cert"], keyfile=pki["key"], ca_certs=pki["ca"], cert_reqs="required")
    assert _tls_get(srv.port, _client_context(pki, with_cert=True)).status == 200
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        _tls_get(srv.port, _client_context(pki, with_cert=False))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"keyfile": "k.pem"}, "--keyfile needs --certfile"),
        ({"ca_certs": "ca.pem"}, "--ca-certs needs --certfile"),
        ({"certfile": "c.pem", "cert_reqs": "required"}, "--cert-reqs required needs --ca-certs"),
    ],
)
def test_inconsistent_tls_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        Config(**options)


def test_unreadable_certificate_is_a_config_error(tmp_path, pki):
    with pytest.raises(ConfigError, match="--certfile/--keyfile cannot be loaded: No such file"):
        make_ssl_context(Config(certfile=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="--ciphers selects no cipher"):
        make_ssl_context(Config(certfile=pki["cert"], keyfile=pki["key"], ciphers="NO-SUCH-CIPHER"))


def test_cli_bad_certificate_is_one_line_and_exit_2(tmp_path):
    result = run_cli("tests.apps.basic:hello", "--certfile", str(tmp_path / "missing.pem"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--certfile/--keyfile cannot be loaded" in lines[0]
