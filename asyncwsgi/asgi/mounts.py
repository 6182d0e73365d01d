"""Which ASGI application, if any, a request path belongs to (``--mount``).
[any: the table is built at startup, matched on the loop]

A mount is a path prefix and an ASGI 3 application. Prefixes are matched against the path as the
WSGI app would see it (``PATH_INFO``, after ``--root-path``), on a path-segment boundary: ``/ws``
takes ``/ws`` and ``/ws/chat`` but not ``/wsx``. The longest matching prefix wins. Everything no
mount takes goes to the WSGI app.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Iterable, List, NamedTuple, Optional, Tuple

from ..errors import ConfigError


class Mount(NamedTuple):
    prefix: str
    app: Any  # an ASGI 3 application: async (scope, receive, send)


def check_prefix(prefix: str) -> str:
    """A mount prefix, or ConfigError: it starts with '/', does not end with one, and is not '/'.

    A mount at '/' would take every request from the WSGI app: serve the ASGI app with an ASGI
    server instead.
    """
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(f"--mount: prefix must start with '/' and not end with '/', got {prefix!r}")
    if any(ch in prefix for ch in "?#%") or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in prefix):
        raise ConfigError(
            f"--mount: prefix must be a plain path (no '?', '#', '%', spaces or controls), got {prefix!r}"
        )
    return prefix


def parse_spec(spec: str) -> Tuple[str, str]:
    """``PREFIX=module:attr`` -> (prefix, app spec), or ConfigError."""
    prefix, sep, target = spec.partition("=")
    if not sep or ":" not in target:
        raise ConfigError(f"--mount: expected PREFIX=module:attribute, got {spec!r}")
    return check_prefix(prefix), target


def is_asgi3(app: Any) -> bool:
    """An async callable taking (scope, receive, send): a coroutine function, or an object whose
    ``__call__`` is one. (ASGI 2's double callable, ``app(scope)`` returning a coroutine function,
    is not served.)"""
    if inspect.isclass(app):
        return False
    if asyncio.iscoroutinefunction(app):
        call: Any = app
    else:
        call = getattr(app, "__call__", None)  # noqa: B004  (an object's __call__, not callable())
        if call is None or not asyncio.iscoroutinefunction(call):
            return False
    try:
        params = [
            p
            for p in inspect.signature(call).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        return True  # no signature to read (a C callable): trust that it is async
    return len(params) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


class Mounts:
    """The mount table, longest prefix first."""

    __slots__ = ("_mounts", "in_order")

    def __init__(self, mounts: Iterable[Tuple[str, Any]]) -> None:
        table: List[Mount] = []
        seen = set()
        for prefix, app in mounts:
            check_prefix(prefix)
            if prefix in seen:
                raise ConfigError(f"--mount: prefix {prefix!r} is mounted twice")
            seen.add(prefix)
            if not is_asgi3(app):
                raise ConfigError(
                    f"--mount {prefix}: {app!r} is not an ASGI 3 application "
                    "(an async callable taking scope, receive and send)"
                )
            table.append(Mount(prefix, app))
        self.in_order = tuple(table)  # as given: lifespan runs in this order
        self._mounts = tuple(sorted(table, key=lambda m: -len(m.prefix)))

    def __bool__(self) -> bool:
        return bool(self._mounts)

    def __len__(self) -> int:
        return len(self._mounts)

    def match(self, path_info: str) -> Optional[Mount]:
        """The mount whose prefix ``path_info`` is under, longest first; None for the WSGI app."""
        for mount in self._mounts:
            prefix = mount.prefix
            if path_info.startswith(prefix) and (len(path_info) == len(prefix) or path_info[len(prefix)] == "/"):
                return mount
        return None
