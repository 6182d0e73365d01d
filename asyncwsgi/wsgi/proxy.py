"""Proxy headers: who the client really is, when a trusted reverse proxy says so. [loop]

With ``--proxy-headers``, a request whose peer is in ``--forwarded-allow-ips`` has its environ
rewritten from ``Forwarded`` (RFC 7239) or, when that is absent, ``X-Forwarded-For``,
``-Proto``, ``-Host``, ``-Port`` and ``-Prefix``. From any other peer those headers are removed
from the environ, so neither the app nor middleware such as werkzeug's ProxyFix can be fooled
by a client that sends them itself.

The client address is the right-most hop that is not itself a trusted proxy: every proxy
appends the address it received the request from, so only entries added by proxies we trust
can be believed, and the first one we do not trust is the client (or the proxy that lied).
Pure functions of the environ and the peer: no I/O, no h11 state.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Dict, List, Optional, Tuple, Union

from ..http.target import is_valid_host
from ..types import Environ

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

PROXY_KEYS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)

# RFC 7239 §4: forwarded-pair = token "=" value, value = token / quoted-string.
_PAIR_RE = re.compile(r'\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')


class TrustedProxies:
    """The parsed ``--forwarded-allow-ips``: IPs and networks, ``unix``, or ``*``."""

    def __init__(self, spec: str) -> None:
        self.any = False
        self.unix = False
        self.networks: List[Network] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item == "*":
                self.any = True
            elif item == "unix":
                self.unix = True
            else:
                # Raises ValueError, which Config reports against its flag.
                self.networks.append(ipaddress.ip_network(item, strict=False))

    def trusts(self, peer: Optional[str]) -> bool:
        """Whether ``peer`` (an IP, or None for a Unix-socket client) may set proxy headers."""
        if peer is None:
            return self.unix or self.any
        if self.any:
            return True
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def apply_proxy_headers(environ: Environ, peer: Optional[str], trusted: TrustedProxies) -> None:
    """Rewrite ``environ`` from the proxy headers if ``peer`` is trusted; else remove them."""
    if not trusted.trusts(peer):
        for key in PROXY_KEYS:
            environ.pop(key, None)
        return
    forwarded = environ.get("HTTP_FORWARDED")
    if forwarded is not None:
        hops = parse_forwarded(forwarded)
        if hops is None:
            return  # malformed: believe none of it
        client_hop = _client_hop([hop.get("for") for hop in hops], trusted)
        if client_hop is not None:
            _set_client(environ, hops[client_hop].get("for"))
            nearest = hops[-1]
            _set_scheme(environ, nearest.get("proto"))
            _set_host(environ, nearest.get("host"))
        return
    forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded_for is not None:
        hops_for: List[Optional[str]] = [part.strip() for part in forwarded_for.split(",")]
        index = _client_hop(hops_for, trusted)
        if index is not None:
            _set_client(environ, hops_for[index])
    _set_scheme(environ, _last(environ.get("HTTP_X_FORWARDED_PROTO")))
    _set_host(environ, _last(environ.get("HTTP_X_FORWARDED_HOST")))
    port = _last(environ.get("HTTP_X_FORWARDED_PORT"))
    if port is not None and port.isascii() and port.isdigit() and 0 < int(port) < 65536:
        environ["SERVER_PORT"] = str(int(port))
    prefix = _last(environ.get("HTTP_X_FORWARDED_PREFIX"))
    if prefix is not None and prefix.startswith("/") and "\\" not in prefix:
        prefix = prefix.rstrip("/")
        path = environ["PATH_INFO"]
        environ["SCRIPT_NAME"] = prefix
        if path == prefix or path.startswith(prefix + "/"):
            environ["PATH_INFO"] = path[len(prefix) :]


def parse_forwarded(value: str) -> Optional[List[Dict[str, str]]]:
    """RFC 7239 ``Forwarded`` as one dict per hop (lower-case parameter names); None if malformed."""
    hops: List[Dict[str, str]] = []
    for element in _split_outside_quotes(value, ","):
        hop: Dict[str, str] = {}
        for pair in _split_outside_quotes(element, ";"):
            if not pair.strip():
                continue
            match = _PAIR_RE.fullmatch(pair)
            if match is None:
                return None
            name, raw = match.group(1).lower(), match.group(2)
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            hop[name] = raw
        hops.append(hop)
    return hops


def _split_outside_quotes(value: str, separator: str) -> List[str]:
    parts: List[str] = []
    current: List[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _client_hop(hops: List[Optional[str]], trusted: TrustedProxies) -> Optional[int]:
    """Index of the right-most hop that is not a trusted proxy (the left-most if all are)."""
    if not hops:
        return None
    for index in range(len(hops) - 1, -1, -1):
        address = _node_address(hops[index])
        if address is None or not trusted.trusts(address):
            return index
    return 0


def _node_address(node: Optional[str]) -> Optional[str]:
    """The IP of a node (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``); None if it has none."""
    if not node:
        return None
    node = node.strip()
    if node.startswith("["):
        end = node.find("]")
        candidate = node[1:end] if end > 0 else ""
    elif node.count(":") == 1:
        candidate = node.split(":", 1)[0]
    else:
        candidate = node
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None  # "unknown", an obfuscated "_name", or garbage


def _set_client(environ: Environ, node: Optional[str]) -> None:
    address = _node_address(node)
    if address is not None:
        environ["REMOTE_ADDR"] = address
        environ.pop("REMOTE_PORT", None)  # the port was the proxy's


def _set_scheme(environ: Environ, proto: Optional[str]) -> None:
    if proto is not None and proto.lower() in ("http", "https"):
        environ["wsgi.url_scheme"] = proto.lower()


def _set_host(environ: Environ, host: Optional[str]) -> None:
    if host and is_valid_host(host):
        environ["HTTP_HOST"] = host
        name, port = _split_host(host)
        environ["SERVER_NAME"] = name
        if port is not None:
            environ["SERVER_PORT"] = port


def _split_host(host: str) -> Tuple[str, Optional[str]]:
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1 :]
        return host[: end + 1], (rest[1:] if rest.startswith(":") and rest[1:] else None)
    name, sep, port = host.partition(":")
    return name, (port if sep and port else None)


def _last(value: Optional[str]) -> Optional[str]:
    """The value the nearest proxy set: the last of a comma-separated list."""
    if value is None:
        return None
    last = value.rsplit(",", 1)[-1].strip()
    return last or None
