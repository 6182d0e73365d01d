"""Proxy headers (--proxy-headers, --forwarded-allow-ips) and --root-path."""

from __future__ import annotations

import json

import pytest

from asyncwsgi import Config, ConfigError
from asyncwsgi.wsgi.proxy import TrustedProxies, apply_proxy_headers, parse_forwarded
from tests.apps import basic
from tests.helpers import get, request


def environ(**extra):
    base = {
        "REMOTE_ADDR": "10.0.0.2",
        "REMOTE_PORT": "50000",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/app/page",
        "HTTP_HOST": "internal:8000",
        "wsgi.url_scheme": "http",
    }
    base.update(extra)
    return base


PROXIES = TrustedProxies("10.0.0.0/8, 192.168.1.1, unix")


def test_trusted_proxies_match_ips_networks_unix_and_star():
    assert PROXIES.trusts("10.1.2.3") and PROXIES.trusts("192.168.1.1")
    assert not PROXIES.trusts("192.168.1.2") and not PROXIES.trusts("203.0.113.9")
    assert PROXIES.trusts(None)  # a Unix-socket peer
    assert not TrustedProxies("127.0.0.1").trusts(None)
    assert TrustedProxies("*").trusts("203.0.113.9") and TrustedProxies("*").trusts(None)
    assert TrustedProxies("::1").trusts("::1") and not TrustedProxies("::1").trusts("not-an-ip")


def test_x_forwarded_for_takes_the_rightmost_untrusted_hop():
    env = environ(HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7, 10.0.0.9")
    apply_proxy_headers(env, "10.0.0.2", PROXIES)
    # 10.0.0.9 is one of our proxies; 203.0.113.7 is the first hop we can't vouch for.
    assert env["REMOTE_ADDR"] == "203.0.113.7" and "REMOTE_PORT" not in env


def test_x_forwarded_for_all_trusted_gives_leftmost():
    env = environ(HTTP_X_FORWARDED_FOR="10.9.9.9, 10.0.0.9")
    apply_proxy_headers(env, "10.0.0.2", PROXIES)
    assert env["REMOTE_ADDR"] == "10.9.9.9"


def test_x_forwarded_proto_host_port_prefix_from_trusted_peer():
    env = environ(
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="evil.example, www.example.com",
        HTTP_X_FORWARDED_PORT="443",
        HTTP_X_FORWARDED_PREFIX="/app/",
    )
    apply_proxy_headers(env, "10.0.0.2", PROXIES)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_HOST"] == "www.example.com" and env["SERVER_NAME"] == "www.example.com"  # nearest proxy's
    assert env["SERVER_PORT"] == "443"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/page")


@pytest.mark.parametrize(
    "key,value",
    [
        ("HTTP_X_FORWARDED_PROTO", "javascript"),
        ("HTTP_X_FORWARDED_HOST", "bad host\\x"),
        ("HTTP_X_FORWARDED_PORT", "99999"),
        ("HTTP_X_FORWARDED_PREFIX", "no-slash"),
        ("HTTP_X_FORWARDED_FOR", "unknown"),
    ],
)
def test_invalid_values_are_ignored(key, value):
    env = environ(**{key: value})
    before = dict(env)
    apply_proxy_headers(env, "10.0.0.2", PROXIES)
    assert env == before


def test_untrusted_peer_gets_proxy_headers_removed():
    env = environ(
        HTTP_X_FORWARDED_FOR="1.2.3.4",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_FORWARDED="for=1.2.3.4",
        HTTP_X_FORWARDED_HOST="evil",
        HTTP_X_FORWARDED_PORT="1",
        HTTP_X_FORWARDED_PREFIX="/x",
        HTTP_ACCEPT="*/*",
    )
    apply_proxy_headers(env, "203.0.113.9", PROXIES)
    assert env["REMOTE_ADDR"] == "10.0.0.2" and env["wsgi.url_scheme"] == "http"
    assert not any(k.startswith(("HTTP_X_FORWARDED", "HTTP_FORWARDED")) for k in env)
    assert env["HTTP_ACCEPT"] == "*/*"


def test_parse_forwarded_rfc7239_examples():
    assert parse_forwarded('for="_gazonk"') == [{"for": "_gazonk"}]
    assert parse_forwarded('For="[2001:db8:cafe::17]:4711"') == [{"for": "[2001:db8:cafe::17]:4711"}]
    assert parse_forwarded("for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    ]
    assert parse_forwarded('for=192.0.2.43, for="[2001:db8:cafe::17]", for=unknown') == [
        {"for": "192.0.2.43"},
        {"for": "[2001:db8:cafe::17]"},
        {"for": "unknown"},
    ]
    assert parse_forwarded('for="a,b;c\\"d"') == [{"for": 'a,b;c"d'}]
    assert parse_forwarded("for") is None and parse_forwarded('for="unterminated') is None


def test_forwarded_wins_over_x_forwarded_and_takes_nearest_proto_and_host():
    env = environ(
        HTTP_FORWARDED='for=198.51.100.1;proto=http, for="[2001:db8::7]:4711";proto=https;host=shop.example',
        HTTP_X_FORWARDED_FOR="6.6.6.6",
    )
    apply_proxy_headers(env, "10.0.0.2", PROXIES)
    assert env["REMOTE_ADDR"] == "2001:db8::7"
    assert env["wsgi.url_scheme"] == "https" and env["HTTP_HOST"] == "shop.example"


def test_malformed_forwarded_is_not_believed():
    env = environ(HTTP_FORWARDED="for=1.2.3.4;;garbage here")
    apply_proxy_headers(env, "10.0.0.2", PROXIES)
    assert env["REMOTE_ADDR"] == "10.0.0.2"


@pytest.mark.parametrize(
    "options,message",
    [
        ({"forwarded_allow_ips": "10.0.0.0/33"}, "--forwarded-allow-ips"),
        ({"forwarded_allow_ips": "localhost"}, "--forwarded-allow-ips"),
        ({"root_path": "api"}, "--root-path"),
        ({"root_path": "/api/"}, "--root-path"),
    ],
)
def test_bad_proxy_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        Config(**options)


def _dump(srv, head: bytes) -> dict:
    resp = request(srv.port, head)
    assert resp.status == 200
    return json.loads(resp.body)


def test_end_to_end_trusted_loopback_proxy(serve):
    srv = serve(basic.environ_dump, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    env = _dump(
        srv,
        get(
            "/", extra=b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: example.org\r\n"
        ),
    )
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["wsgi.url_scheme"] == "https" and env["HTTP_HOST"] == "example.org"


def test_end_to_end_untrusted_peer_cannot_spoof(serve):
    srv = serve(basic.environ_dump, proxy_headers=True, forwarded_allow_ips="10.0.0.0/8")
    env = _dump(srv, get("/", extra=b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"))
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["wsgi.url_scheme"] == "http"
    assert "HTTP_X_FORWARDED_FOR" not in env and "HTTP_X_FORWARDED_PROTO" not in env


def test_end_to_end_headers_untouched_without_proxy_headers(serve):
    srv = serve(basic.environ_dump)
    env = _dump(srv, get("/", extra=b"X-Forwarded-For: 203.0.113.7\r\n"))
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"


def test_root_path_moves_prefix_to_script_name(serve):
    srv = serve(basic.environ_dump, root_path="/api")
    env = _dump(srv, get("/api/users?x=1"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"]) == ("/api", "/users", "x=1")
    env = _dump(srv, get("/api"))
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "")
    env = _dump(srv, get("/apiary"))  # not under the prefix: passed as it is
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/api", "/apiary")
