"""Which static directory, if any, a request path belongs to (``--static PREFIX=DIR``).
[any: the table is built at startup, matched on the loop]

A static mount is a path prefix and a directory. Prefixes match as ``--mount`` prefixes do, on a
path-segment boundary against ``PATH_INFO`` (after ``--root-path``), the longest first, and
static mounts are looked at before ASGI mounts and the WSGI app: ``/static`` takes ``/static`` and
``/static/app.css``, not ``/staticfiles``. A prefix is never ``/``: it would take every request
from the app. Each directory is resolved once, at startup, to its real path: a symlinked
directory serves what it points to, and a directory that does not exist is a one-line error
before anything listens.
"""

from __future__ import annotations

import os
from typing import Iterable, List, NamedTuple, Optional, Tuple

from ..errors import ConfigError


class StaticMount(NamedTuple):
    prefix: str  # starting with '/', no trailing slash
    root: str  # the directory's real path, no trailing slash


def check_prefix(prefix: str) -> str:
    """A static prefix, or ConfigError: a plain path starting with '/', not ending with one."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(f"--static: prefix must start with '/' and not end with '/', got {prefix!r}")
    if any(ch in prefix for ch in "?#%\\") or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in prefix):
        raise ConfigError(f"--static: prefix must be a plain path (no '?', '#', '%', '\\', spaces), got {prefix!r}")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise ConfigError(f"--static: prefix must not have '.' or '..' segments, got {prefix!r}")
    return prefix


def parse_spec(spec: str) -> Tuple[str, str]:
    """``PREFIX=DIR`` -> (prefix, directory as given), or ConfigError."""
    prefix, sep, directory = spec.partition("=") if isinstance(spec, str) else ("", "", "")
    if not sep or not directory:
        raise ConfigError(f"--static: expected PREFIX=DIR, got {spec!r}")
    return check_prefix(prefix), directory


class StaticMounts:
    """The static mount table, longest prefix first."""

    __slots__ = ("_mounts", "in_order")

    def __init__(self, specs: Iterable[str]) -> None:
        table: List[StaticMount] = []
        seen = set()
        for spec in specs:
            prefix, directory = parse_spec(spec)
            if prefix in seen:
                raise ConfigError(f"--static: prefix {prefix!r} is given twice")
            seen.add(prefix)
            root = os.path.realpath(directory)
            if not os.path.isdir(root):
                raise ConfigError(f"--static {prefix}: {directory!r} is not a directory")
            table.append(StaticMount(prefix, root))
        self.in_order = tuple(table)
        self._mounts = tuple(sorted(table, key=lambda m: -len(m.prefix)))

    def __bool__(self) -> bool:
        return bool(self._mounts)

    def match(self, path_info: str) -> Optional[Tuple[StaticMount, str]]:
        """The mount ``path_info`` is under and the rest of the path ('' or starting with '/')."""
        for mount in self._mounts:
            prefix = mount.prefix
            if path_info.startswith(prefix) and (len(path_info) == len(prefix) or path_info[len(prefix)] == "/"):
                return mount, path_info[len(prefix) :]
        return None
