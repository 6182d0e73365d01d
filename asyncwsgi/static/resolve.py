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
from typing import NamedTuple, Optional, Sequence, Union


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
    info = _stat_inside(root, segments, follow_symlinks)
    if info is None:
        return None
    if stat.S_ISDIR(info.st_mode):
        if not index:
            return None
        if not text.endswith("/"):
            return REDIRECT
        path = os.path.join(path, INDEX)
        info = _stat_inside(root, [*segments, INDEX], follow_symlinks)
        if info is None:
            return None
    return path if stat.S_ISREG(info.st_mode) else None


def variant(root: str, path: str, suffix: str, follow_symlinks: bool) -> Optional[str]:
    """``path + suffix`` (a precompressed copy: ``.br``, ``.gz``) if it is a regular file under
    ``root``, else None. ``path`` is ``resolve``'s: its directories are known to be inside."""
    candidate = path + suffix
    try:
        info = _followed(root, candidate, os.lstat(candidate), follow_symlinks)
    except (OSError, ValueError):
        return None
    return candidate if info is not None and stat.S_ISREG(info.st_mode) else None


def _stat_inside(root: str, segments: Sequence[str], follow_symlinks: bool) -> Optional[os.stat_result]:
    """The stat (through symlinks) of ``segments`` under ``root`` (a real path), or None if it
    does not exist, or if a symlink on the way leads out of ``root`` and symlinks are not
    followed out.

    One lstat per segment: the path's real parts are those; only where a segment is a symlink
    is the real path of what it leads to worked out (``realpath``) and checked. (realpath of the
    whole path cost one lstat per component of the directory as well, and Python's loop around
    them.)
    """
    path = root
    try:
        if not segments:
            return os.stat(root)
        for segment in segments:
            path = path + os.sep + segment
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                path = os.path.realpath(path)
                followed = _followed(root, path, info, follow_symlinks)
                if followed is None:
                    return None
                info = followed
        return info  # (bound: there was a segment)
    except (OSError, ValueError):
        return None


def _followed(root: str, path: str, info: os.stat_result, follow_symlinks: bool) -> Optional[os.stat_result]:
    """``info`` (an lstat of ``path``, in a directory inside ``root``), or what the symlink it
    may be leads to: None if that leaves ``root`` and symlinks are not followed out."""
    if not stat.S_ISLNK(info.st_mode):
        return info
    real = os.path.realpath(path)
    if not follow_symlinks and real != root and not real.startswith(root + os.sep):
        return None
    return os.stat(real)
