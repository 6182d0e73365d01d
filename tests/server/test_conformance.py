"""PEP 3333 conformance: the stdlib validator sees no violation, and the environ is exact."""

from __future__ import annotations

import json
import logging
import warnings
from wsgiref.validate import validator

import pytest

from tests.apps import basic
from tests.helpers import Reader, connect, get, request

VALIDATED_APPS = {
    "hello": basic.hello,
    "echo": basic.echo_sized_reads,
    "stream": basic.stream,
    "no_body": basic.no_body,
    "write": basic.write_callable,
    "environ": basic.environ_dump,
}

REQUESTS = [
    get("/a/b?x=1"),
    b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
]


@pytest.mark.parametrize("name", sorted(VALIDATED_APPS))
def test_wsgiref_validator_finds_nothing(serve, caplog, name):
    srv = serve(validator(VALIDATED_APPS[name]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for raw in REQUESTS:
            resp = request(srv.port, raw, head_request=raw.startswith(b"HEAD"))
            assert resp.status in (200, 204), resp.raw
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    problems += [
        str(w.message) for w in caught if "wsgiref" in (w.filename or "") or w.category.__name__ == "WSGIWarning"
    ]
    assert not problems


def test_environ_key_by_key(serve):
    srv = serve(basic.environ_dump)
    raw = (
        b"POST /caf%C3%A9/x%2Fy?q=%20a&b HTTP/1.1\r\n"
        b"Host: example.org:8080\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 3\r\n"
        b"X-Multi: one\r\n"
        b"X-Multi: two\r\n"
        b"Cookie: a=1\r\n"
        b"Cookie: b=2\r\n"
        b"\r\n"
        b"abc"
    )
    with connect(srv.port) as sock:
        sock.sendall(raw)
        client_port = sock.getsockname()[1]
        env = json.loads(Reader(sock).response().body)
    expected = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/caf\u00c3\u00a9/x/y",  # percent-decoded, then latin-1: "bytes in a str"
        "QUERY_STRING": "q=%20a&b",  # raw
        "RAW_URI": "/caf%C3%A9/x%2Fy?q=%20a&b",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "3",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(srv.port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": str(client_port),
        "HTTP_HOST": "example.org:8080",
        "HTTP_X_MULTI": "one,two",
        "HTTP_COOKIE": "a=1; b=2",
        "wsgi.version": [1, 0],
        "wsgi.url_scheme": "http",
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    assert env == expected


def test_no_content_type_or_length_when_absent(serve):
    srv = serve(basic.environ_dump)
    env = json.loads(request(srv.port, get("/")).body)
    assert "CONTENT_TYPE" not in env
    assert "CONTENT_LENGTH" not in env
    assert env["QUERY_STRING"] == ""


def test_url_scheme_option(serve):
    srv = serve(basic.environ_dump, url_scheme="https")
    assert json.loads(request(srv.port, get("/")).body)["wsgi.url_scheme"] == "https"


def test_wsgi_objects_present(serve):
    seen = {}

    def app(environ, start_response):
        import sys

        seen["errors"] = environ["wsgi.errors"] is sys.stderr
        seen["input"] = hasattr(environ["wsgi.input"], "read")
        seen["file_wrapper"] = callable(environ["wsgi.file_wrapper"])
        start_response("200 OK", [])
        return [b""]

    srv = serve(app)
    assert request(srv.port, get("/")).status == 200
    assert seen == {"errors": True, "input": True, "file_wrapper": True}
