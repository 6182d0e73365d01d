"""``http/head.py``: the head checks as a table, with no server (issue 11 item 2)."""

from __future__ import annotations

import h11
import pytest

from asyncwsgi.http.head import HeadLimits, HeadRefused, check_fields, check_request

LIMITS = HeadLimits(
    max_request_line_bytes=100, max_header_bytes=64, max_header_count=5, max_head_bytes=250, max_body_bytes=1000
)


def parsed(raw: bytes) -> h11.Request:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, h11.Request), event
    return event


def check(raw: bytes):
    return check_request(parsed(raw), lambda: raw[: raw.index(b"\r\n\r\n") + 4], LIMITS)


REFUSED = [
    ("http2", b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    ("long-line", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    ("long-field", b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 70 + b"\r\n\r\n", 431),
    ("six-fields", b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X%d: v\r\n" % i for i in range(5)) + b"\r\n", 431),
    (
        "head-too-big",
        b"GET / HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X%d: %s\r\n" % (i, b"v" * 55) for i in range(4)) + b"\r\n",
        431,
    ),
    ("cl-and-te", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("cl-list", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\n", 400),
    ("cl-repeated", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
    ("te-on-1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ("two-content-types", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n", 400),
    # A missing or repeated Host h11 refuses itself (tests/server/test_smuggling.py has them end to end).
    ("bad-host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("asterisk-get", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("fragment", b"GET /a#b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    ("userinfo", b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ("body-too-large", b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413),
]


@pytest.mark.parametrize("raw,status", [pytest.param(r, s, id=n) for n, r, s in REFUSED])
def test_refused(raw, status):
    with pytest.raises(HeadRefused) as refused:
        check(raw)
    assert refused.value.status == status and refused.value.detail


def test_a_plain_get():
    head = check(b"GET /p?q=1 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n")
    assert head.fields == [(b"host", b"t"), (b"accept", b"*/*")]
    assert (head.path, head.query, head.content_length, head.chunked, head.close) == (b"/p", b"q=1", None, False, False)


@pytest.mark.parametrize(
    "raw,close",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", True, id="1.1-close"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\n\r\n", True, id="1.1-close-token"),
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", True, id="1.0"),
        pytest.param(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", False, id="1.0-keep-alive"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", False, id="1.1"),
    ],
)
def test_connection_persistence(raw, close):
    assert check(raw).close is close


def test_framing_is_reported():
    assert check(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n").content_length == 10
    chunked = check(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert chunked.chunked and chunked.content_length is None


def test_absolute_form_authority_replaces_host():
    head = check(b"GET http://example.org:8080?x HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (b"host", b"example.org:8080") in head.fields and (b"host", b"other") not in head.fields
    assert (head.path, head.query) == (b"/", b"x")


def test_trailer_limits():
    assert check_fields([(b"x", b"1")], 64, 5) is None
    assert "max-header-bytes" in (check_fields([(b"x", b"v" * 70)], 64, 5) or "")
    assert "max-header-count" in (check_fields([(b"x", b"1")] * 6, 64, 5) or "")


def test_the_fast_read_of_h11s_fields_is_still_there():
    """check_request reads h11's private field list (0.5 µs a request); if a new h11 drops or
    reshapes it, the fallback (plain iteration) works but the speed is gone: fail loudly."""
    request = parsed(b"GET / HTTP/1.1\r\nHost: t\r\nX-Case: V\r\n\r\n")
    full = request.headers._full_items
    assert [(name, value) for _, name, value in full] == list(request.headers)
    assert [raw for raw, _, _ in full] == [b"Host", b"X-Case"]


def test_fields_are_the_same_without_the_fast_read():
    class Slow:  # an h11 whose Headers have no _full_items
        def __init__(self, request):
            self._request = request

        def __getattr__(self, name):
            if name == "headers":
                return list(self._request.headers)
            return getattr(self._request, name)

    raw = b"GET /p HTTP/1.1\r\nHost: t\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    fast = check(raw)
    slow = check_request(Slow(parsed(raw)), lambda: raw, LIMITS)  # type: ignore[arg-type]
    assert slow == fast and fast.close
