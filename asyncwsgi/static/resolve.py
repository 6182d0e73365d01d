"""A request path under a static mount, resolved to a file under its directory, safely. [loop]

The rest of the path after the prefix comes from ``PATH_INFO``, percent-decoded once by the
environ builder (so ``%2e%2e`` and ``%2f`` are already ``..`` and ``/`` here, and ``%252e`` stays
the literal ``%2e``). What is never served:

* a path that is not UTF-8 (overlong forms like ``%c0%ae`` included), or that has a NUL or a
  backslash anywhere;
* a segment that starts with a dot: ``.`` and ``..`` (so nothing above the directory is ever
  named) and dotfiles (``.env``, ``.git/``);
* a file whose real path leaves the directory through a symlink, unless the mount follows
  symlinks (``--static-follow-symlinks``);
* anything but a regular file: a directory is served only as its ``index.html`` with
  ``--static-index`` (and a directory asked for without its trailing slash is redirected to it,
  so the index's relative links work); sockets, devices and FIFOs never.

Empty segments (``a//b``) are skipped. Each request is stat'ed afresh: a file replaced on disk is
served as it is now.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple, Optional, Union


class Redirect(NamedTuple):
    """A directory asked for without its trailing slash: answer 301 to the path with one."""


REDIRECT = Redirect()
INDEX = "index.html"


def resolve(root: str, rest: str, index: bool, follow_symlinks: bool) -> Union[str, Redirect, None]:
    """The file ``rest`` names under ``root`` (a real path), REDIRECT, or None (not found)."""
    try:
        text = rest.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None
    if "\x00" in text or "\\" in text:
        return None
    segments = [segment for segment in text.split("/") if segment]
    if any(segment.startswith(".") for segment in segments):
        return None
    path = os.path.join(root, *segments)
    info = _stat_inside(root, path, follow_symlinks)
    if info is None:
        return None
    if stat.S_ISDIR(info.st_mode):
        if not index:
            return None
        if not text.endswith("/"):
            return REDIRECT
        path = os.path.join(path, INDEX)
        info = _stat_inside(root, path, follow_symlinks)
        if info is None:
            return None
    return path if stat.S_ISREG(info.st_mode) else None


def variant(root: str, path: str, suffix: str, follow_symlinks: bool) -> Optional[str]:
    """``path + suffix`` (a precompressed copy: ``.br``, ``.gz``) if it is a regular file under
    ``root``, else None."""
    candidate = path + suffix
    info = _stat_inside(root, candidate, follow_symlinks)
    return candidate if info is not None and stat.S_ISREG(info.st_mode) else None


def _stat_inside(root: str, path: str, follow_symlinks: bool) -> Optional[os.stat_result]:
    """``path``'s stat (through symlinks), or None if it does not exist, or if its real path
    leaves ``root`` and symlinks are not followed out (one lstat per component to know)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if not follow_symlinks:
        real = os.path.realpath(path)
        if real != root and not real.startswith(root + os.sep):
            return None
    return info
