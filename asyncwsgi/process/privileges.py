"""Start as root, serve as someone else: --user and --group, applied after binding. [main]

Binding a port below 1024 needs root; running the app does not. The CLI binds its sockets
first, then drops to the given user and group before the app is imported, so nothing of the
app's ever runs as root. Unix socket files the server created are handed to that user.
"""

from __future__ import annotations

import grp
import os
import pwd
from typing import List, Optional, Tuple

from ..errors import ConfigError
from ..log import error_log


def resolve(user: Optional[str], group: Optional[str]) -> Tuple[int, int]:
    """(uid, gid) for the names or numbers given; the user's own group when no group is."""
    try:
        entry = pwd.getpwuid(int(user)) if user and user.isdigit() else pwd.getpwnam(user) if user else None
    except KeyError:
        raise ConfigError(f"--user: no such user {user!r}") from None
    uid = entry.pw_uid if entry else os.getuid()
    gid = entry.pw_gid if entry else os.getgid()
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"--group: no such group {group!r}") from None
    return uid, gid


def drop(uid: int, gid: int, user: Optional[str], files: List[str]) -> None:
    """Become uid/gid for good (group first, while we still may), owning ``files``."""
    if os.geteuid() != 0:
        raise ConfigError("--user and --group need the server to be started as root")
    for path in files:
        os.chown(path, uid, gid)
    os.setgroups([])
    if user is not None and not user.isdigit():
        os.initgroups(user, gid)
    os.setgid(gid)
    os.setuid(uid)
    error_log.info("running as uid %d, gid %d", uid, gid)
