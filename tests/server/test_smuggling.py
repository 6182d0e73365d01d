"""Request smuggling and framing edge cases, table-driven, with the answer each one gets.

Every case is sent with a well-formed request pipelined right behind it. The app records every
request it sees: the pipelined one must never be dispatched after a rejection. Then a good
request on a fresh connection proves the server still serves.
"""

from __future__ import annotations

import logging

import pytest

from tests.apps import basic
from tests.helpers import Reader, assert_refused, connect, get, request, wait_for

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
H = b"POST / HTTP/1.1\r\nHost: t\r\n"

# (id, raw request, expected status); every one also gets Connection: close and a closed connection
CASES = [
    # Content-Length vs Transfer-Encoding (RFC 9112 §6.1, §6.3)
    ("cl-and-te", H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-and-cl", H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl-conflicting", H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400),
    ("cl-conflicting-list", H + b"Content-Length: 5, 6\r\n\r\nhello", 400),
    ("cl-plus", H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl-hex", H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-negative", H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-huge", H + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("cl-space-inside", H + b"Content-Length: 1 0\r\n\r\nhello", 400),
    # §6.3 lets a server merge equal values or refuse them; refusing cannot disagree with a proxy.
    ("cl-duplicate-same", H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl-list-same", H + b"Content-Length: 5, 5\r\n\r\nhello", 400),
    # A coding we don't implement before a final chunked: 501. Chunked not last, or twice, leaves
    # the length unknown, which §6.3 answers with 400.
    ("te-gzip-chunked", H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-chunked-gzip", H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-chunked", H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-two-fields", H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-identity", H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("te-vertical-tab", H + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("te-space-before-colon", H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-on-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # Chunked framing
    ("chunk-size-garbage", H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-negative", H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-0x", H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-missing-crlf", H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
    ("chunk-bare-cr", H + b"Transfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-lf", H + b"Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n", 400),
    # Chunk lines read strictly (RFC 9112 §7.1; the "funky chunks" primitives).
    ("chunk-size-then-space", H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ows-before-ext", H + b"Transfer-Encoding: chunked\r\n\r\n5 ;a=b\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-tab-before-ext", H + b"Transfer-Encoding: chunked\r\n\r\n5\t;a=b\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-empty-ext", H + b"Transfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-bare-cr", H + b"Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-bare-lf", H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("chunk-data-bare-lf", H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
    ("chunk-last-bare-lf", H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n", 400),
    ("chunk-size-too-long", H + b"Transfer-Encoding: chunked\r\n\r\n" + b"0" * 17 + b"5\r\nhello\r\n0\r\n\r\n", 400),
    # Trailers that frame or route (RFC 9110 §6.5.1) are refused, never merged or exposed.
    ("trailer-content-length", H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 5\r\n\r\n", 400),
    ("trailer-te", H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("trailer-host", H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nHost: evil\r\n\r\n", 400),
    ("trailer-bare-lf", H + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\n\r\n", 400),
    # Head syntax (RFC 9112 §2, §5)
    ("bare-cr-in-head", b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n", 400),
    ("ctl-in-name", b"GET / HTTP/1.1\r\nHost: t\r\nX\x01A: a\r\n\r\n", 400),
    ("cr-in-value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n", 400),
    # RFC 9110 §5.5: no CTLs but HTAB in a field value.
    ("bel-in-value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x07b\r\n\r\n", 400),
    ("del-in-value", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n", 400),
    # A bare LF inside a CRLF head: a CRLF-only front end sees one field where h11 saw two.
    ("bare-lf-in-crlf-head", H + b"Dummy: x\nContent-Length: 5\r\n\r\nhello", 400),
    ("bare-lf-head", b"GET /lf HTTP/1.1\nHost: t\n\n", 400),
    ("bare-lf-ends-head", b"GET / HTTP/1.1\r\nHost: t\r\n\n", 400),
    # RFC 9112 §5.2: obs-fold may be refused, the choice that cannot disagree with a proxy.
    ("obs-fold", H + b"Foo: bar\r\n Content-Length: 5\r\n\r\nhello", 400),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n\tb\r\n\r\n", 400),
    ("nine-empty-lines", b"\r\n" * 9 + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("http09", b"GET /\r\n\r\n", 400),
    ("http2-version", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    ("bad-method", b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400),
    ("asterisk-not-options", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("absolute-form-ftp", b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("obs-text-in-target", b"GET /\x9b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("missing-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("two-content-types", H + b"Content-Type: a/b\r\nContent-Type: c/d\r\nContent-Length: 0\r\n\r\n", 400),
    ("host-userinfo", b"GET / HTTP/1.1\r\nHost: user@evil\r\n\r\n", 400),
]

# Accepted on purpose, with the reason: these are answered normally and the connection stays usable.
ACCEPTED = [
    # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a request line.
    ("leading-empty-line", b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("eight-empty-lines", b"\r\n" * 8 + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
    # ... which is also what a client that appends CRLF after a POST body sends.
    ("crlf-after-body", H + b"Content-Length: 5\r\n\r\nhello\r\n"),
    # RFC 9112 §7.1.1: unknown chunk extensions are ignored.
    ("chunk-ext", H + b"Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n"),
    ("chunk-ext-quoted", H + b'Transfer-Encoding: chunked\r\n\r\n5;a="x y";b\r\nhello\r\n0\r\n\r\n'),
    ("chunk-trailer", H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"),
    # RFC 9110 §7.8: a server may ignore Upgrade; the connection then goes on as HTTP/1.1.
    (
        "upgrade-h2c",
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
    ),
    (
        "upgrade-websocket",
        b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    ),
    # RFC 9112 §3.2.2: absolute-form, the authority ending at "?", the empty path meaning "/".
    ("absolute-form-empty-path", b"GET http://hypnotoad.org?hail=all HTTP/1.1\r\nHost: t\r\n\r\n"),
    # RFC 9110 §7.8 / §10.1.1: Expect in an HTTP/1.0 request is ignored (no 100 sent).
    ("expect-on-http10", b"POST /ten HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"),
    # Transfer-coding names are case-insensitive (RFC 9112 §7).
    ("te-Chunked", H + b"Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
]


def _app(seen):
    def app(environ, start_response):
        seen.append(environ["PATH_INFO"])
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + body]

    return app


@pytest.mark.parametrize("raw,status", [pytest.param(r, s, id=n) for n, r, s in CASES])
def test_rejected(serve, caplog, raw, status):
    seen: list = []
    srv = serve(_app(seen))
    caplog.set_level(logging.INFO, logger="asyncwsgi")
    assert_refused(srv.port, raw + SMUGGLED, status)
    assert "/smuggled" not in seen, "a request pipelined behind a rejected one was dispatched"
    assert request(srv.port, get("/after")).status == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("raw", [pytest.param(r, id=n) for n, r in ACCEPTED])
def test_accepted_leniencies_stay_consistent(serve, raw):
    seen: list = []
    srv = serve(_app(seen))
    http10 = b" HTTP/1.0" in raw.split(b"\n", 1)[0]
    with connect(srv.port) as sock:
        sock.sendall(raw + get("/next"))
        reader = Reader(sock)
        first = reader.response()
        assert first.status == 200
        if b"hello" in raw:
            assert first.body == b"got hello"  # the body was framed as intended, not as a new request
        if http10:
            assert reader.closed()  # HTTP/1.0: one request per connection
        else:
            assert reader.response().status == 200  # the request after it is framed right
            assert seen[-1] == "/next"


def test_control_characters_are_escaped_in_access_log(serve, caplog):
    srv = serve(basic.hello, access_log=True)
    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    # CTLs in a field value are refused (bel-in-value above); obs-text such as the 8-bit CSI is
    # valid and must still be escaped, as must the path's percent-escapes and quotes.
    ua = b"evil\x9b31mred\x9b2J"
    referer = b'x" 200 0 "forged'
    assert (
        request(srv.port, get("/log%0d%0a", extra=b"User-Agent: " + ua + b"\r\nReferer: " + referer + b"\r\n")).status
        == 200
    )
    # The line is logged on the loop thread right after the response is written: wait for it.
    assert wait_for(lambda: any(r.name == "asyncwsgi.access" for r in caplog.records))
    lines = [r.getMessage() for r in caplog.records if r.name == "asyncwsgi.access"]
    assert len(lines) == 1
    line = lines[0]
    assert "\x9b" not in line
    assert "\\x9b31mred\\x9b2J" in line
    assert '\\"' in line and '"x" 200' not in line  # a quote can't end the field and forge another
    assert "/log%0d%0a" in line  # percent-escapes stay as sent (they are not decoded in the log)


def test_a_bad_chunk_line_while_draining_an_unread_body_ends_the_connection(serve):
    """The app answered without reading a chunked body; the rest is drained, and a malformed
    chunk line there ends the connection at once (before, nothing ever read it again)."""
    srv = serve(basic.ignores_body, request_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.sendall(H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        reader = Reader(sock)
        assert reader.response().status == 200
        sock.sendall(b"5 \r\nworld\r\n0\r\n\r\n" + SMUGGLED)
        assert reader.closed()
    assert request(srv.port, get("/after")).status == 200
