"""Unit tests for the plain-text responses the server makes up (asyncwsgi/http/plain.py)."""

from __future__ import annotations

import h11
import pytest

from asyncwsgi.http import plain


def test_reason_phrases_are_rfc_9110s_on_every_python():
    assert plain.reason(413) == b"Content Too Large"  # 3.10-3.12 say "Request Entity Too Large"
    assert plain.reason(414) == b"URI Too Long"
    assert plain.reason(404) == b"Not Found"
    assert plain.reason(299) == b""  # not named: no phrase, and a body that says so
    assert plain.body(299) == b"Error\n"


@pytest.mark.parametrize("status", [400, 408, 413, 414, 431, 500, 501, 503, 504])
def test_a_closing_response_is_whole_and_its_length_is_its_bodys(status):
    wire = plain.closing(status, [(b"Retry-After", b"1")])
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    response = client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == status
    headers = dict(response.headers)
    assert headers[b"connection"] == b"close" and headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    data = client.next_event()
    assert isinstance(data, h11.Data) and data.data == plain.reason(status) + b"\n"
    assert isinstance(client.next_event(), h11.EndOfMessage)


def test_a_head_declares_the_length_of_its_body():
    head = plain.head(500, [(b"X", b"y")])
    assert head.status_code == 500 and head.reason == b"Internal Server Error"
    assert (b"Content-Length", b"%d" % len(plain.body(500))) in head.headers and (b"X", b"y") in head.headers
