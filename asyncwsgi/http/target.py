"""Request targets and Host values (RFC 9112 §3.2, RFC 3986 §3.2). [loop]

Pure functions: the target split into path and query, its authority when absolute-form, and
whether a Host value is well formed.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Tuple

# RFC 3986 §3.2.2: IP-literal, or reg-name / IPv4address (a superset pattern), then an optional port.
_HOST_RE = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?\Z")


def is_valid_host(host: str) -> bool:
    """Whether ``host`` is a syntactically valid Host value (RFC 9110 §7.2)."""
    return host.isascii() and _HOST_RE.match(host.encode("ascii")) is not None


class BadTarget(ValueError):
    """The request target or Host header cannot be mapped to a WSGI environ; answer 400."""


def split_target(method: bytes, target: bytes) -> Tuple[bytes, bytes, Optional[bytes]]:
    """Return (path, query, authority) for the request target forms of RFC 9112 §3.2.

    ``authority`` is the host of an absolute-form target, which replaces the Host header
    (§3.2.2); None for the other forms.
    """
    authority: Optional[bytes] = None
    if target[:1] == b"/":  # origin-form, by far the most common
        path, _, query = target.partition(b"?")
    elif target == b"*":  # asterisk-form, only for OPTIONS (RFC 9112 §3.2.4)
        if method != b"OPTIONS":
            raise BadTarget("asterisk-form target is only valid for OPTIONS")
        return b"*", b"", None
    else:  # absolute-form (RFC 9112 §3.2.2); never pass a raw URI through as PATH_INFO
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise BadTarget("request target must be origin-form, absolute-form or '*'")
        # RFC 3986 §3.2: the authority ends at the first "/", "?" or "#".
        match = _AUTHORITY_END.search(rest)
        split = len(rest) if match is None else match.start()
        authority, remainder = rest[:split], rest[split:]
        if not authority or not _HOST_RE.match(authority):
            raise BadTarget("absolute-form target has an invalid authority")
        path, _, query = remainder.partition(b"?")
        if not path:
            path = b"/"  # RFC 9110 §4.2.3: an empty path is "/"
    if b"#" in target:
        raise BadTarget("request target must not contain a fragment")
    return path, query, authority


_AUTHORITY_END = re.compile(rb"[/?#]")


def check_host(http_version: bytes, headers: Any) -> Optional[bytes]:
    """Return the Host value; raise BadTarget if missing on 1.1, repeated, or malformed (RFC 9112 §3.2)."""
    host: Optional[bytes] = None
    for name, value in headers:
        if name == b"host":
            if host is not None:
                raise BadTarget("duplicate Host header")
            host = value
    if host is None:
        if http_version == b"1.1":
            raise BadTarget("missing Host header")
        return None
    if not _HOST_RE.match(host):
        raise BadTarget("invalid Host header")
    return host
