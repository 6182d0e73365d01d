"""What the client sees, and what is logged, when the application misbehaves."""

from __future__ import annotations

import logging

import pytest

from tests.apps import basic
from tests.helpers import Reader, connect, get, request


def _errors(caplog):
    return [r for r in caplog.records if r.name == "asyncwsgi.error" and r.levelno >= logging.ERROR]


def test_exception_before_headers_gives_500_and_traceback(serve, caplog):
    srv = serve(basic.boom)
    with connect(srv.port) as sock:
        sock.sendall(get("/") + get("/"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 500
        assert resp.body == b"Internal Server Error\n"
        assert b"boom" not in resp.raw  # no internals leak to the client
        assert reader.response().status == 500  # the connection was still usable
    records = _errors(caplog)
    assert len(records) == 2
    assert records[0].exc_info is not None and "boom before start_response" in str(records[0].exc_info[1])


def test_exception_after_headers_closes_connection(serve, caplog):
    srv = serve(basic.boom_after_headers)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        with pytest.raises(EOFError):
            reader.response()  # chunked body never terminated: the client can tell it's incomplete
        assert reader.eof
        assert b"7\r\npartial\r\n" in reader.received  # what was sent before the error was flushed
    assert any("boom after headers" in str(r.exc_info[1]) for r in _errors(caplog))


@pytest.mark.parametrize(
    "app", [basic.bad_header, basic.bad_status, basic.hop_by_hop], ids=["crlf-header", "crlf-status", "hop-by-hop"]
)
def test_invalid_response_head_gives_500_never_split(serve, caplog, app):
    srv = serve(app)
    resp = request(srv.port, get("/"))
    assert resp.status == 500
    assert b"pwned" not in resp.raw and b"X-Evil" not in resp.raw
    assert _errors(caplog)


def test_wrong_content_length_from_app_closes(serve, caplog):
    srv = serve(basic.short_content_length)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        with pytest.raises(EOFError):
            reader.response()
    assert any("framing" in r.getMessage() for r in _errors(caplog))


def test_exc_info_replaces_headers_before_sending(serve):
    srv = serve(basic.exc_info_replace)
    resp = request(srv.port, get("/"))
    assert resp.status == 503
    assert resp.body == b"replaced"


def test_write_callable(serve):
    srv = serve(basic.write_callable)
    resp = request(srv.port, get("/"))
    assert resp.body == b"written,returned"


def test_start_response_twice_without_exc_info_is_an_error(serve, caplog):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    srv = serve(app)
    assert request(srv.port, get("/")).status == 500
    assert any("second time" in str(r.exc_info[1]) for r in _errors(caplog))


def test_app_not_calling_start_response(serve, caplog):
    def app(environ, start_response):
        return [b"x"]

    srv = serve(app)
    assert request(srv.port, get("/")).status == 500


def test_app_yielding_str_is_an_error(serve, caplog):
    def app(environ, start_response):
        start_response("200 OK", [])
        return ["text"]

    srv = serve(app)
    assert request(srv.port, get("/")).status == 500
    assert any("bytes" in str(r.exc_info[1]) for r in _errors(caplog))


def test_close_raising_is_logged_and_500(serve, caplog):
    class Body:
        def __iter__(self):
            yield b"x"

        def close(self):
            raise OSError("close failed")

    def app(environ, start_response):
        start_response("200 OK", [])
        return Body()

    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        reader = Reader(sock)
        with pytest.raises(EOFError):
            reader.response()  # headers were out: the connection is closed, not reused
    assert any("close failed" in str(r.exc_info[1]) for r in _errors(caplog))
