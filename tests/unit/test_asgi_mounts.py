"""Unit tests for the mount table and the checks on what an ASGI app sends (asyncwsgi/asgi/)."""

from __future__ import annotations

from typing import Any

import pytest

from asyncwsgi.asgi.messages import body_of, response_head
from asyncwsgi.asgi.mounts import Mounts, is_asgi3, parse_spec
from asyncwsgi.asgi.scope import http_scope
from asyncwsgi.errors import ConfigError


async def app(scope: Any, receive: Any, send: Any) -> None:
    pass


class AppObject:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


def wsgi(environ: Any, start_response: Any) -> Any:
    return []


def asgi2(scope: Any) -> Any:
    async def instance(receive: Any, send: Any) -> None:
        pass

    return instance


async def two_args(scope: Any, receive: Any) -> None:
    pass


@pytest.mark.parametrize(
    "candidate, ok",
    [
        (app, True),
        (AppObject(), True),
        (wsgi, False),
        (asgi2, False),
        (AppObject, False),
        (two_args, False),
        (1, False),
    ],
)
def test_only_asgi3_callables_are_apps(candidate, ok):
    assert is_asgi3(candidate) is ok


def test_the_longest_prefix_wins_on_a_segment_boundary():
    mounts = Mounts([("/api", app), ("/api/v2", AppObject())])
    assert mounts.match("/api").prefix == "/api"  # type: ignore[union-attr]
    assert mounts.match("/api/x").prefix == "/api"  # type: ignore[union-attr]
    assert mounts.match("/api/v2").prefix == "/api/v2"  # type: ignore[union-attr]
    assert mounts.match("/api/v2/users").prefix == "/api/v2"  # type: ignore[union-attr]
    assert mounts.match("/api/v23").prefix == "/api"  # type: ignore[union-attr]
    assert mounts.match("/apix") is None
    assert mounts.match("/") is None
    assert [m.prefix for m in mounts.in_order] == ["/api", "/api/v2"]  # lifespan order: as given


@pytest.mark.parametrize("prefix", ["", "/", "api", "/api/", "/a b", "/a?b", "/a%20", "/a\x00"])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(ConfigError, match="--mount"):
        Mounts([(prefix, app)])


def test_a_prefix_mounted_twice_or_a_wsgi_app_is_refused():
    with pytest.raises(ConfigError, match="twice"):
        Mounts([("/a", app), ("/a", app)])
    with pytest.raises(ConfigError, match="not an ASGI 3 application"):
        Mounts([("/a", wsgi)])


def test_mount_specs():
    assert parse_spec("/ws=chat:app") == ("/ws", "chat:app")
    for bad in ("/ws", "/ws=chat", "ws=chat:app"):
        with pytest.raises(ConfigError):
            parse_spec(bad)


def test_response_head_is_checked():
    head, has_length = response_head(
        {"status": 201, "headers": [(b"content-type", b"text/plain"), [b"content-length", b"3"]]}
    )
    assert head.status_code == 201 and head.reason == b"Created" and has_length
    for message, error in [
        ({"status": "200"}, ValueError),
        ({"status": 99}, ValueError),
        ({"status": 200, "headers": [("x", "y")]}, TypeError),
        ({"status": 200, "headers": [(b"x",)]}, TypeError),
        ({"status": 200, "headers": [(b"bad name", b"y")]}, ValueError),
        ({"status": 200, "headers": [(b"x", b"a\r\nb")]}, ValueError),
        ({"status": 200, "headers": [(b"upgrade", b"h2c")]}, ValueError),
        ({"status": 200, "headers": [(b"content-length", b"x")]}, ValueError),
        ({"status": 200, "headers": [(b"content-length", b"1"), (b"content-length", b"2")]}, ValueError),
    ]:
        with pytest.raises(error):
            response_head(message)


def test_transfer_encoding_from_the_app_is_ignored():
    """ASGI spec, "Response Start": the server frames the body; the app's header is dropped."""
    head, has_length = response_head(
        {"status": 200, "headers": [(b"Transfer-Encoding", b"chunked"), (b"content-type", b"text/plain")]}
    )
    assert head.headers == [(b"content-type", b"text/plain")] and not has_length


def test_connection_close_is_kept_and_other_connection_values_dropped():
    head, _ = response_head({"status": 200, "headers": [(b"connection", b"keep-alive, close")]})
    assert head.headers == [(b"connection", b"close")]
    head, _ = response_head({"status": 200, "headers": [(b"connection", b"keep-alive")]})
    assert head.headers == []


def test_body_of():
    assert body_of({"type": "http.response.body"}) == (b"", False)
    assert body_of({"body": bytearray(b"ab"), "more_body": True}) == (b"ab", True)
    with pytest.raises(TypeError):
        body_of({"body": "text"})


def test_http_scope_from_an_environ():
    environ = {
        "SCRIPT_NAME": "/site",
        "PATH_INFO": "/api/caf\xc3\xa9",  # latin-1 "bytes in a str", as PEP 3333 has it
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": "GET",
        "wsgi.url_scheme": "https",
        "QUERY_STRING": "a=1",
        "REMOTE_ADDR": "10.0.0.9",
        "REMOTE_PORT": "5000",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "443",
    }
    state = {"db": 1}
    scope = http_scope(environ, "/api", b"/site/api/caf%C3%A9", [(b"host", b"example.org")], state)
    assert scope["path"] == "/site/api/café"
    assert scope["root_path"] == "/site/api"
    assert scope["raw_path"] == b"/site/api/caf%C3%A9"
    assert scope["query_string"] == b"a=1"
    assert scope["client"] == ("10.0.0.9", 5000) and scope["server"] == ("example.org", 443)
    assert scope["scheme"] == "https" and scope["http_version"] == "1.1"
    assert scope["state"] == state and scope["state"] is not state  # a copy per request
