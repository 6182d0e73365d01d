from __future__ import annotations

import pytest

from asyncwsgi.http.target import BadTarget, check_host, split_target
from asyncwsgi.wsgi.environ import EnvironBuilder


@pytest.mark.parametrize(
    "method,target,expected",
    [
        (b"GET", b"/", (b"/", b"", None)),
        (b"GET", b"/a?b=c?d", (b"/a", b"b=c?d", None)),
        (b"GET", b"http://h/x?y", (b"/x", b"y", b"h")),
        (b"GET", b"HTTPS://h:8443", (b"/", b"", b"h:8443")),
        (b"GET", b"http://[::1]:80/p", (b"/p", b"", b"[::1]:80")),
        # RFC 3986 §3.2: the authority ends at "?" too; the empty path is "/" (llhttp's corpus).
        (b"GET", b"http://hypnotoad.org?hail=all", (b"/", b"hail=all", b"hypnotoad.org")),
        (b"OPTIONS", b"*", (b"*", b"", None)),
    ],
)
def test_split_target(method, target, expected):
    assert split_target(method, target) == expected


@pytest.mark.parametrize(
    "method,target",
    [(b"GET", b"*"), (b"CONNECT", b"h:443"), (b"GET", b"ftp://h/"), (b"GET", b"http:///nohost"), (b"GET", b"/a#f")],
)
def test_split_target_rejects(method, target):
    with pytest.raises(BadTarget):
        split_target(method, target)


@pytest.mark.parametrize("value", [b"example.com", b"example.com:80", b"[::1]:8080", b"10.0.0.1", b"xn--e1a.example"])
def test_valid_hosts(value):
    assert check_host(b"1.1", [(b"host", value)]) == value


@pytest.mark.parametrize("value", [b"a b", b"a/b", b"a@b", b"h:port", b"[::1", b"a\\b"])
def test_invalid_hosts(value):
    with pytest.raises(BadTarget):
        check_host(b"1.1", [(b"host", value)])


def test_host_required_on_11_only():
    with pytest.raises(BadTarget, match="missing"):
        check_host(b"1.1", [])
    assert check_host(b"1.0", []) is None
    with pytest.raises(BadTarget, match="duplicate"):
        check_host(b"1.0", [(b"host", b"a"), (b"host", b"a")])


def test_build_environ():
    builder = EnvironBuilder(url_scheme="http", multiprocess=False, file_wrapper=None)
    headers = [
        (b"host", b"h"),
        (b"x_forwarded_for", b"evil"),
        (b"x-forwarded-for", b"good"),
        (b"accept", b"a"),
        (b"accept", b"b"),
    ]
    env = builder.build(b"GET", b"/p%41th?q", b"1.1", headers, b"/p%41th", b"q", ("srv", "80"), ("1.2.3.4", "5"), None)
    assert env["PATH_INFO"] == "/pAth"
    assert env["HTTP_X_FORWARDED_FOR"] == "good"
    assert env["HTTP_ACCEPT"] == "a,b"
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["REMOTE_ADDR"], env["REMOTE_PORT"]) == (
        "srv",
        "80",
        "1.2.3.4",
        "5",
    )
    # Each request gets its own dict: the template is never shared.
    env2 = builder.build(b"GET", b"/", b"1.1", [], b"/", b"", ("s", "1"), None, None)
    assert "HTTP_ACCEPT" not in env2 and "REMOTE_ADDR" not in env2
