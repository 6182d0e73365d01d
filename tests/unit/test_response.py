"""Unit tests for response serialisation and body framing (asyncwsgi/http/response.py)."""

from __future__ import annotations

import h11
import pytest

from asyncwsgi.http.response import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    UNTIL_CLOSE,
    FramingError,
    ResponseHead,
    simple_response,
    start_response,
)

EXTRA = (b"Date: Sun, 22 Nov 2026 05:25:39 GMT", b"Server: asyncwsgi")


def head(code=200, headers=None, reason=b"OK"):
    return ResponseHead(code, reason, list(headers or []))


def start(h, *, method=b"GET", http11=True, close=False):
    return start_response(h, head_request=method == b"HEAD", http11=http11, close=close, extra=EXTRA)


def parse(data: bytes, method: bytes = b"GET"):
    """Read ``data`` with h11's client side: proves the bytes are a valid response."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    events = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            break
        events.append(event)
        if type(event) is h11.EndOfMessage:
            break
    return events


def test_content_length_body_is_exact_and_keeps_alive():
    data, framer, closes = start(head(headers=[(b"Content-Length", b"5"), (b"X-A", b"1")]))
    assert data == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n"
        b"Date: Sun, 22 Nov 2026 05:25:39 GMT\r\nServer: asyncwsgi\r\n\r\n"
    )
    assert (framer.kind, closes) == (LENGTH, False)
    wire = data + b"".join(framer.data(b"hel")) + b"".join(framer.data(b"lo")) + framer.end()
    events = parse(wire)
    assert events[0].status_code == 200 and events[1].data == b"hello"
    assert type(events[-1]) is h11.EndOfMessage


def test_bytes_past_content_length_are_cut_and_counted():
    """PEP 3333: no more than Content-Length bytes go out; the excess is counted, not sent."""
    _, framer, _ = start(head(headers=[(b"Content-Length", b"5")]))
    assert framer.data(b"012") == [b"012"] and framer.excess == 0
    assert framer.data(b"3456789") == [b"34"] and framer.excess == 5
    assert framer.data(b"more") == [] and framer.excess == 9
    assert framer.end() == b""


def test_too_few_bytes_are_a_framing_error():
    _, framer, _ = start(head(headers=[(b"Content-Length", b"3")]))
    framer.data(b"ab")
    with pytest.raises(FramingError):
        framer.end()


def test_unknown_length_on_http11_is_chunked():
    data, framer, closes = start(head())
    assert b"Transfer-Encoding: chunked\r\n" in data and not closes
    assert framer.kind is CHUNKED
    body = framer.data(b"abc") + framer.data(b"") + framer.data(b"0123456789abcdef")
    wire = data + b"".join(body) + framer.end()
    assert wire.endswith(b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
    events = parse(wire)
    assert b"".join(e.data for e in events if type(e) is h11.Data) == b"abc0123456789abcdef"


def test_unknown_length_on_http10_is_delimited_by_close():
    data, framer, closes = start(head(), http11=False)
    assert framer.kind is UNTIL_CLOSE and closes
    assert b"Transfer-Encoding" not in data and b"Connection: close\r\n" in data
    assert framer.data(b"abc") == [b"abc"] and framer.end() == b""


def test_http10_closes_unless_the_client_asked_for_keep_alive():
    # The protocol passes close=True for an HTTP/1.0 request without "Connection: keep-alive".
    data, _, closes = start(head(headers=[(b"Content-Length", b"0")]), http11=False, close=True)
    assert closes and data.endswith(b"Connection: close\r\n\r\n")
    data, _, closes = start(head(headers=[(b"Content-Length", b"0")]), http11=False)
    assert not closes and data.endswith(b"Connection: keep-alive\r\n\r\n")  # it expects a close
    data, _, closes = start(head(headers=[(b"Content-Length", b"0")]))
    assert not closes and b"Connection" not in data  # HTTP/1.1 persists by default


def test_http10_keep_alive_still_closes_for_a_body_of_unknown_length():
    data, framer, closes = start(head(), http11=False)
    assert framer.kind is UNTIL_CLOSE and closes and b"keep-alive" not in data


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses_get_no_framing_headers(code):
    data, framer, closes = start(head(code, reason=b"X"))
    assert framer.kind is NO_BODY and not closes
    assert b"Transfer-Encoding" not in data and b"Content-Length" not in data
    assert framer.data(b"ignored") == [] and framer.end() == b""


def test_a_204_never_carries_content_length_and_a_304_keeps_the_apps():
    """RFC 9110 §8.6: no Content-Length in a 204; a 304 may say the length a 200 would have."""
    data, framer, _ = start(head(204, [(b"Content-Length", b"5"), (b"X", b"y")], b"No Content"))
    assert b"Content-Length" not in data and b"X: y\r\n" in data and framer.kind is NO_BODY
    data, framer, _ = start(head(304, [(b"Content-Length", b"5")], b"Not Modified"))
    assert b"Content-Length: 5\r\n" in data and framer.kind is NO_BODY and framer.end() == b""


def test_head_gets_get_headers_without_body():
    data, framer, _ = start(head(), method=b"HEAD")
    assert b"Transfer-Encoding: chunked" in data  # as a GET would get
    assert framer.kind is NO_BODY and framer.data(b"x") == [] and framer.end() == b""
    data, framer, _ = start(head(headers=[(b"Content-Length", b"99")]), method=b"HEAD")
    assert b"Content-Length: 99\r\n" in data and framer.end() == b""
    assert parse(data, b"HEAD")[0].status_code == 200


def test_server_close_and_app_close_give_one_connection_header():
    data, _, closes = start(head(headers=[(b"Content-Length", b"0")]), close=True)
    assert closes and data.count(b"Connection: close") == 1
    data, _, closes = start(head(headers=[(b"Content-Length", b"0"), (b"Connection", b"close")]), close=True)
    assert closes and data.count(b"onnection: close") == 1


def test_around_frames_bytes_sent_without_holding_them():
    _, framer, _ = start(head())
    assert framer.around(300) == (b"12c\r\n", b"\r\n")
    _, framer, _ = start(head(headers=[(b"Content-Length", b"300")]))
    assert framer.around(300) == (b"", b"") and framer.end() == b""
    _, framer, _ = start(head(headers=[(b"Content-Length", b"10")]))
    with pytest.raises(FramingError):
        framer.around(11)


def test_date_and_server_are_added_only_when_the_app_has_not_set_them():
    """RFC 9110 §6.6.1: one Date. The app's own Date or Server wins, as under wsgiref and gunicorn."""
    data, _, _ = start(head(headers=[(b"Content-Length", b"0"), (b"date", b"Mon, 01 Jan 2024 00:00:00 GMT")]))
    assert data.count(b"Date:") + data.count(b"date:") == 1 and b"date: Mon, 01 Jan 2024" in data
    assert b"Server: asyncwsgi" in data
    data, _, _ = start(head(headers=[(b"Content-Length", b"0"), (b"Server", b"mine")]))
    assert data.count(b"Server:") == 1 and b"Server: mine" in data and b"Date: Sun" in data
    data, _, _ = start(head(headers=[(b"Content-Length", b"0")]))
    assert data.count(b"Date:") == 1 and data.count(b"Server:") == 1


def test_simple_response_is_complete_and_closes():
    wire = simple_response(400, b"Bad Request", [(b"Content-Type", b"text/plain")], b"Bad Request\n")
    assert wire.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Content-Length: 12\r\nConnection: close\r\n\r\nBad Request\n" in wire
    events = parse(wire)
    assert events[0].status_code == 400 and events[1].data == b"Bad Request\n"
