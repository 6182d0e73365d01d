"""--proxy-protocol: the PROXY v1/v2 parser byte by byte, then the server over real sockets."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncwsgi import Config, ConfigError
from asyncwsgi.errors import ProxyProtocolError
from asyncwsgi.http.proxyprotocol import V2_SIGNATURE, ProxyHeader, parse
from tests.apps import basic
from tests.helpers import Reader, connect, get, wait_for

V1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n"


def v2(
    command: int = 1,
    family: int = 1,
    transport: int = 1,
    addresses: bytes = b"",
    tlvs: bytes = b"",
    version: int = 2,
) -> bytes:
    body = addresses + tlvs
    return V2_SIGNATURE + struct.pack("!BBH", version << 4 | command, family << 4 | transport, len(body)) + body


def inet(client: str = "203.0.113.7", port: int = 56324) -> bytes:
    return (
        ipaddress.IPv4Address(client).packed + ipaddress.IPv4Address("10.0.0.1").packed + struct.pack("!HH", port, 443)
    )


def inet6(client: str = "2001:db8::7", port: int = 4000) -> bytes:
    return (
        ipaddress.IPv6Address(client).packed
        + ipaddress.IPv6Address("2001:db8::1").packed
        + struct.pack("!HH", port, 443)
    )


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


SSL_TLV = tlv(0x20, b"\x01" + b"\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))  # PP2_CLIENT_SSL, verified


# --- the parser ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, client",
    [
        (V1, ("203.0.113.7", "56324")),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n", ("2001:db8::7", "4000")),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 65535\r\n", ("0.0.0.0", "0")),
        (b"PROXY UNKNOWN\r\n", None),
        (b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", None),
    ],
)
def test_v1_headers(header, client):
    assert parse(header + b"GET /") == (len(header), ProxyHeader(client))


@pytest.mark.parametrize(
    "header, client, tls",
    [
        (v2(addresses=inet()), ("203.0.113.7", "56324"), False),
        (v2(family=2, addresses=inet6()), ("2001:db8::7", "4000"), False),
        (v2(addresses=inet(), tlvs=SSL_TLV), ("203.0.113.7", "56324"), True),
        (v2(addresses=inet(), tlvs=tlv(0x20, b"\x00\x00\x00\x00\x00")), ("203.0.113.7", "56324"), False),
        (v2(addresses=inet(), tlvs=tlv(0x04, b"\x00" * 300)), ("203.0.113.7", "56324"), False),  # NOOP padding
        (v2(command=0, family=0, transport=0), None, False),  # LOCAL: the balancer's own health check
        (v2(command=0, addresses=inet()), None, False),  # LOCAL ignores any addresses
        (v2(family=0, transport=0), None, False),  # UNSPEC
        (v2(family=3, addresses=b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0")), None, False),  # Unix
        (v2(transport=2, addresses=inet()), None, False),  # DGRAM: not our client
    ],
)
def test_v2_headers(header, client, tls):
    assert parse(header + b"GET /") == (len(header), ProxyHeader(client, tls))


@pytest.mark.parametrize("header", [V1, v2(addresses=inet(), tlvs=SSL_TLV), b"PROXY UNKNOWN\r\n"])
def test_every_proper_prefix_needs_more(header):
    for end in range(len(header)):
        assert parse(header[:end]) is None, header[:end]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"GET / HTTP/1.1\r\n", "expected a PROXY protocol header"),
        (b"POST / HTTP/1.1\r\n", "expected a PROXY protocol header"),
        (b"\r\nGET /", "expected a PROXY protocol header"),
        (b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n", "malformed v1 header"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", "malformed v1 header"),
        (b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n", "malformed v1 header"),
        (b"PROXY TCP4 2001:db8::7 1.2.3.5 1 2\r\n", "IPv6 address for TCP4"),
        (b"PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n", "IPv4 address for TCP6"),
        (b"PROXY TCP4 1.2.3.04 1.2.3.5 1 2\r\n", "invalid address"),
        (b"PROXY TCP4 example.com 1.2.3.5 1 2\r\n", "invalid address"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 080 2\r\n", "invalid port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "invalid port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 -1 2\r\n", "invalid port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n", "must end with CRLF"),
        (b"PROXY UNKNOWN " + b"x" * 100, "longer than 107 bytes"),
        (v2(version=1, addresses=inet()), "unsupported v2 version 1"),
        (v2(command=2, addresses=inet()), "unknown v2 command 2"),
        (v2(family=4, addresses=inet()), "unknown v2 address family 4"),
        (v2(addresses=inet()[:8]), "shorter than its family needs"),
        (v2(family=2, addresses=inet()), "shorter than its family needs"),
        (v2(addresses=inet(), tlvs=b"\x20\x00\x09\x01"), "TLV runs past the header"),
        (v2(addresses=inet(), tlvs=b"\x20\x00"), "ends inside a TLV"),
    ],
)
def test_malformed_headers_are_refused(data, message):
    with pytest.raises(ProxyProtocolError, match=message):
        parse(data)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=60).map(lambda b: V1[:20] + b),
        st.binary().map(lambda b: V2_SIGNATURE + b),
    )
)
def test_any_bytes_need_more_parse_or_raise_the_one_error(data):
    try:
        result = parse(data)
    except ProxyProtocolError:
        return
    if result is not None:
        consumed, header = result
        assert 0 < consumed <= len(data)
        assert header.client is None or ipaddress.ip_address(header.client[0])


# --- the server ----------------------------------------------------------------------------------


def dump(sock: socket.socket, reader: Reader, extra: bytes = b"") -> dict:
    sock.sendall(get("/", extra=extra))
    response = reader.response()
    assert response.status == 200, response.raw
    return json.loads(response.body)


def test_v1_client_address_becomes_remote_addr_for_every_request_on_the_connection(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True)
    with connect(srv.port) as sock:
        sock.sendall(V1)
        reader = Reader(sock)
        first = dump(sock, reader)
        second = dump(sock, reader)  # keep-alive: the header came once, it still holds
    for env in (first, second):
        assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.7", "56324")
        assert env["wsgi.url_scheme"] == "http"
        assert not any(key.startswith("HTTP_PROXY") for key in env)


def test_v2_tls_flag_makes_the_scheme_https(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True)
    with connect(srv.port) as sock:
        sock.sendall(v2(family=2, addresses=inet6(), tlvs=SSL_TLV) + get("/"))
        env = json.loads(Reader(sock).response().body)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]) == ("2001:db8::7", "4000", "https")


def test_header_and_request_may_arrive_a_byte_at_a_time(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True)
    with connect(srv.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in v2(addresses=inet(port=9)) + get("/"):
            sock.send(bytes([byte]))
        env = json.loads(Reader(sock).response().body)
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("203.0.113.7", "9")


def test_local_command_keeps_the_peer_address(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True)
    with connect(srv.port) as sock:
        sock.sendall(v2(command=0, family=0, transport=0) + get("/"))
        env = json.loads(Reader(sock).response().body)
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("first", [get("/"), b"PROXY TCP4 1.2.3.4 1.2.3.5 1 99999\r\n" + get("/")])
def test_trusted_peer_without_a_valid_header_gets_400_and_a_close(serve, first):
    srv = serve(basic.environ_dump, proxy_protocol=True)
    with connect(srv.port) as sock:
        sock.sendall(first)
        reader = Reader(sock)
        response = reader.response()
        assert response.status == 400
        assert response.header(b"connection") == b"close"
        assert reader.closed()


def test_untrusted_peer_is_plain_http_and_cannot_claim_an_address(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True, forwarded_allow_ips="10.9.9.9")
    with connect(srv.port) as sock:
        env = dump(sock, Reader(sock))
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    with connect(srv.port) as sock:
        sock.sendall(V1 + get("/"))
        reader = Reader(sock)
        assert reader.response().status == 400  # "PROXY TCP4 ..." is not a request line
        assert reader.closed()


def test_proxy_headers_from_the_balancers_client_are_not_believed(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    with connect(srv.port) as sock:
        sock.sendall(V1)
        env = dump(sock, Reader(sock), extra=b"X-Forwarded-For: 198.51.100.66\r\n")
    # The client is 203.0.113.7 (untrusted), so its X-Forwarded-For is dropped, not applied.
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert "HTTP_X_FORWARDED_FOR" not in env


def test_per_ip_limit_counts_the_balancer_and_releases_its_slot(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True, max_connections_per_ip=1)
    for _ in range(3):  # each needs the slot the previous connection returned
        with connect(srv.port) as sock:
            sock.sendall(V1)
            assert dump(sock, Reader(sock))["REMOTE_ADDR"] == "203.0.113.7"
        assert wait_for(lambda: srv.server.connections == 0)


def test_proxy_protocol_cannot_be_combined_with_tls():
    with pytest.raises(ConfigError, match="--proxy-protocol cannot be combined with --certfile"):
        Config(proxy_protocol=True, certfile="cert.pem")


def test_a_header_that_never_completes_is_closed_at_the_header_timeout(serve):
    srv = serve(basic.environ_dump, proxy_protocol=True, header_timeout=0.5)
    with connect(srv.port) as sock:
        sock.sendall(V1[:20])  # half a header, then silence
        reader = Reader(sock)
        assert reader.closed(timeout=5.0)
        assert reader.received == b""  # nothing to answer: no HTTP request has begun
    assert srv.server.stats.timeouts["header"] == 1
