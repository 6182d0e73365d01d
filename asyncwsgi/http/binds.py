"""``--bind`` addresses: parsing only, no sockets. [main]

HOST:PORT       127.0.0.1:8000, 0.0.0.0:80, localhost:0 (a name binds every address it has)
[IPV6]:PORT     [::1]:8000, [::]:443
unix:PATH       a Unix domain socket (a stale socket file from an earlier run is replaced)
fd://N          an inherited, already listening socket
systemd         every socket systemd passes by socket activation (LISTEN_FDS, LISTEN_PID)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BindKind = Literal["tcp", "unix", "fd", "systemd"]


@dataclass(frozen=True)
class BindAddress:
    kind: BindKind
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1


def parse_bind(spec: str) -> BindAddress:
    """Parse one ``--bind`` value; ValueError says what is wrong with it."""
    if spec == "systemd":
        return BindAddress("systemd")
    if spec.startswith("unix:"):
        path = spec[len("unix:") :]
        if not path:
            raise ValueError("unix: needs a path, e.g. unix:/run/app.sock")
        return BindAddress("unix", path=path)
    if spec.startswith("fd://"):
        number = spec[len("fd://") :]
        if not (number.isascii() and number.isdigit()):
            raise ValueError("fd:// needs a file descriptor number, e.g. fd://3")
        return BindAddress("fd", fd=int(number))
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1 : end + 2] != ":":
            raise ValueError("an IPv6 address is written [ADDRESS]:PORT")
        host, port = spec[1:end], spec[end + 2 :]
    else:
        host, sep, port = spec.rpartition(":")
        if not sep:
            raise ValueError("expected HOST:PORT, [IPV6]:PORT, unix:PATH, fd://N or systemd")
        if ":" in host:
            raise ValueError("write an IPv6 address in brackets: [ADDRESS]:PORT")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535, got {port!r}")
    return BindAddress("tcp", host=host, port=int(port))
