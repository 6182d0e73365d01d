"""The PROXY protocol, versions 1 and 2: the client's address from a layer-4 load balancer. [loop]

A TCP load balancer (HAProxy with ``send-proxy``, AWS NLB, many Kubernetes ingresses) connects
to us itself, so the peer address is the balancer's. With ``--proxy-protocol`` it writes one
header before the HTTP bytes saying whom it accepted the connection from, and that becomes
``REMOTE_ADDR``/``REMOTE_PORT``. Only peers in ``--forwarded-allow-ips`` are read this way;
anyone else could simply claim an address, so their bytes are HTTP from the first.

Specification: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt. Pure functions of
the bytes received so far: no I/O. ``parse`` says "need more", returns the header, or raises.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from ..errors import ProxyProtocolError

V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107  # the specification's worst case, "PROXY UNKNOWN" with two IPv6 addresses and CRLF
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_HEAD = struct.Struct("!12sBBH")  # signature, version/command, family/transport, length

_LOCAL, _PROXY = 0x0, 0x1
_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX = 0x0, 0x1, 0x2, 0x3
_STREAM = 0x1
_ADDRESS_BYTES = {_AF_INET: 12, _AF_INET6: 36, _AF_UNIX: 216}
_TLV_SSL = 0x20
_CLIENT_SSL = 0x01


@dataclass(frozen=True)
class ProxyHeader:
    """What the balancer told us. ``client`` is None when it did not say (LOCAL, UNKNOWN, Unix)."""

    client: Optional[Tuple[str, str]]
    tls: bool = False  # v2 only: the client's connection to the balancer was TLS


class Preamble:
    """A connection's PROXY header, read as its bytes arrive; then what it said.

    ``peer_ip`` is the address that connected (the balancer's): connection limits counted it.
    """

    __slots__ = ("_pending", "header", "peer_ip")

    def __init__(self, peer_ip: Optional[str]) -> None:
        self.peer_ip = peer_ip
        self.header: Optional[ProxyHeader] = None
        self._pending = bytearray()

    def feed(self, data: bytes) -> Optional[bytes]:
        """The bytes after the header once it is whole (then ``header`` is set); None before.
        Raises ProxyProtocolError as soon as the bytes cannot be a header."""
        pending = self._pending
        pending += data
        parsed = parse(pending)
        if parsed is None:
            return None
        consumed, self.header = parsed
        rest = bytes(pending[consumed:])
        self._pending = bytearray()
        return rest


def parse(data: Union[bytes, bytearray]) -> Optional[Tuple[int, ProxyHeader]]:
    """``(bytes consumed, header)`` once ``data`` holds a whole header; None while it may still
    become one. Raises ProxyProtocolError as soon as it cannot."""
    if data[:1] == b"\r":
        return _parse_v2(data)
    if data[:1] == b"P":
        return _parse_v1(data)
    if data:
        raise ProxyProtocolError("expected a PROXY protocol header")
    return None


def _parse_v1(data: Union[bytes, bytearray]) -> Optional[Tuple[int, ProxyHeader]]:
    if not V1_PREFIX.startswith(bytes(data[: len(V1_PREFIX)])):
        raise ProxyProtocolError("expected a PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyProtocolError(f"v1 header longer than {V1_MAX_BYTES} bytes")
        if b"\n" in data:
            raise ProxyProtocolError("v1 header must end with CRLF")
        return None
    line = bytes(data[len(V1_PREFIX) : end])
    parts = line.split(b" ")
    if parts[0] == b"UNKNOWN":
        return end + 2, ProxyHeader(None)  # the rest of the line is to be ignored
    if len(parts) != 5 or parts[0] not in (b"TCP4", b"TCP6"):
        raise ProxyProtocolError("malformed v1 header")
    family, source, destination, source_port, destination_port = parts
    version = 4 if family == b"TCP4" else 6
    client_ip = _v1_address(source, version)
    _v1_address(destination, version)
    port = _v1_port(source_port)
    _v1_port(destination_port)
    return end + 2, ProxyHeader((client_ip, port))


def _v1_address(text: bytes, version: int) -> str:
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError(f"v1 header has an invalid address {text!r}") from None
    if address.version != version:
        raise ProxyProtocolError(f"v1 header has an IPv{address.version} address for TCP{version}")
    return str(address)


def _v1_port(text: bytes) -> str:
    # Decimal, 0..65535, without leading zeros (as the specification writes them).
    if not (text.isdigit() and len(text) <= 5 and (text == b"0" or text[:1] != b"0") and int(text) <= 65535):
        raise ProxyProtocolError(f"v1 header has an invalid port {text!r}")
    return text.decode("ascii")


def _parse_v2(data: Union[bytes, bytearray]) -> Optional[Tuple[int, ProxyHeader]]:
    if not V2_SIGNATURE.startswith(bytes(data[: len(V2_SIGNATURE)])):
        raise ProxyProtocolError("expected a PROXY protocol header")
    if len(data) < _V2_HEAD.size:
        return None
    _, version_command, family_transport, length = _V2_HEAD.unpack_from(data)
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"unsupported v2 version {version_command >> 4}")
    command = version_command & 0xF
    if command not in (_LOCAL, _PROXY):
        raise ProxyProtocolError(f"unknown v2 command {command}")
    total = _V2_HEAD.size + length
    if len(data) < total:
        return None
    body = bytes(data[_V2_HEAD.size : total])
    family, transport = family_transport >> 4, family_transport & 0xF
    if command == _LOCAL:
        # The balancer's own connection (a health check): the peer is who it says it is.
        return total, ProxyHeader(None)
    if family not in (_AF_UNSPEC, _AF_INET, _AF_INET6, _AF_UNIX):
        raise ProxyProtocolError(f"unknown v2 address family {family}")
    needed = _ADDRESS_BYTES.get(family, 0)
    if len(body) < needed:
        raise ProxyProtocolError("v2 address block is shorter than its family needs")
    tls = _has_client_tls(body[needed:])
    if family in (_AF_UNSPEC, _AF_UNIX) or transport != _STREAM:
        return total, ProxyHeader(None, tls)  # nothing we could use as REMOTE_ADDR
    if family == _AF_INET:
        ip = str(ipaddress.IPv4Address(body[0:4]))
        port = int.from_bytes(body[8:10], "big")
    else:
        ip = str(ipaddress.IPv6Address(body[0:16]))
        port = int.from_bytes(body[32:34], "big")
    return total, ProxyHeader((ip, str(port)), tls)


def _has_client_tls(tlvs: bytes) -> bool:
    """Whether the TLVs after the addresses include PP2_TYPE_SSL with the PP2_CLIENT_SSL flag."""
    offset = 0
    while offset + 3 <= len(tlvs):
        kind = tlvs[offset]
        size = int.from_bytes(tlvs[offset + 1 : offset + 3], "big")
        value = tlvs[offset + 3 : offset + 3 + size]
        if len(value) != size:
            raise ProxyProtocolError("v2 TLV runs past the header")
        if kind == _TLV_SSL and size >= 1 and value[0] & _CLIENT_SSL:
            return True
        offset += 3 + size
    if offset != len(tlvs):
        raise ProxyProtocolError("v2 header ends inside a TLV")
    return False
