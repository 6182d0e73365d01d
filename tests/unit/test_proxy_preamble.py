"""Unit tests for reading a PROXY header as its bytes arrive (asyncwsgi/http/proxyprotocol.py)."""

from __future__ import annotations

import pytest

from asyncwsgi.errors import ProxyProtocolError
from asyncwsgi.http.proxyprotocol import Preamble

V1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\n"
HTTP = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize("cut", range(1, len(V1) + 5))
def test_header_split_anywhere_gives_the_same_client_and_the_bytes_after_it(cut):
    data = V1 + HTTP
    preamble = Preamble("10.0.0.9")
    first = preamble.feed(data[:cut])
    if cut < len(V1):
        assert first is None and preamble.header is None
        rest = preamble.feed(data[cut:])
    else:
        rest = first + data[cut:] if first is not None else None
    assert rest == HTTP
    assert preamble.header is not None
    assert preamble.header.client == ("203.0.113.7", "51234")
    assert preamble.peer_ip == "10.0.0.9"  # the balancer's own address is kept for the limits


def test_http_where_a_header_was_due_is_refused():
    with pytest.raises(ProxyProtocolError):
        Preamble("10.0.0.9").feed(HTTP)
