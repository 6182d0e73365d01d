"""Build the PEP 3333 environ for a request. [loop]

Pure functions of the parsed request and the connection's addresses: no I/O, no h11 state.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Optional, Tuple
from urllib.parse import unquote_to_bytes

from ..types import Environ

_header_keys: Dict[bytes, Optional[str]] = {}


def _environ_key(name: bytes) -> Optional[str]:
    """Map a lower-case header name to its environ key; None for names that must be dropped."""
    key = _header_keys.get(name)
    if key is None and name not in _header_keys:
        if name == b"content-type":
            key = "CONTENT_TYPE"
        elif name == b"content-length":
            key = "CONTENT_LENGTH"
        elif b"_" in name:
            # "X_Forwarded_For" would become HTTP_X_FORWARDED_FOR too and could spoof the
            # header a proxy set; drop it like waitress and nginx do.
            key = None
        else:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(_header_keys) < 1024:  # bound the cache: header names are client-chosen
            _header_keys[name] = key
    return key


class EnvironBuilder:
    """Holds the keys that are the same for every request and fills in the rest."""

    def __init__(self, *, url_scheme: str, multiprocess: bool, file_wrapper: Any, script_name: str = "") -> None:
        self._script_name = script_name
        self._template: Environ = {
            "SCRIPT_NAME": script_name,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": file_wrapper,
        }

    def build(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes,
        headers: Any,
        path: bytes,
        query: bytes,
        server: Tuple[str, str],
        client: Optional[Tuple[str, str]],
        body: Any,
    ) -> Environ:
        environ = self._template.copy()
        environ["REQUEST_METHOD"] = method.decode("ascii")
        # PEP 3333: PATH_INFO is the percent-decoded path as "bytes in a str" (latin-1).
        if b"%" in path:
            path = unquote_to_bytes(path)
        path_info = path.decode("latin-1")
        root = self._script_name
        if root and (path_info == root or path_info.startswith(root + "/")):
            path_info = path_info[len(root) :]  # the app is mounted at --root-path
        environ["PATH_INFO"] = path_info
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["RAW_URI"] = target.decode("latin-1")
        environ["SERVER_PROTOCOL"] = "HTTP/" + http_version.decode("ascii")
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server
        if client is not None:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client
        environ["wsgi.input"] = body
        for name, value in headers:
            key = _environ_key(name)
            if key is None:
                continue
            text = value.decode("latin-1")
            if key in environ:
                # RFC 9110 §5.3: repeated fields combine with ","; Cookie uses "; " (RFC 6265 §5.4).
                text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
            environ[key] = text
        return environ
