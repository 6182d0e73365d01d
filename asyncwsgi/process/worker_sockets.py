"""Which listening sockets each ``--workers`` process serves. [main: the supervisor]

Workers occupy numbered slots (0 .. N-1). With ``--reuse-port`` (the default on Linux), every
slot has its own SO_REUSEPORT socket for each TCP address, and the kernel spreads new
connections evenly between them by a hash of the addresses. With one socket shared by every
worker, whichever worker wakes first accepts a whole burst of connections, so keep-alive
clients that connect together can all land on one worker (measured in
``benchmarks/accept_balance.py``, reported in docs/deployment.md).

Sockets that cannot be multiplied are shared by every slot: Unix sockets (Linux does not
balance those), inherited ``fd://`` and systemd sockets, and everything with ``--no-reuse-port``.
With ``--user``, the first ``--workers`` slots are bound before privileges are dropped; a slot
added later (SIGTTIN) is bound as the user, which a port below 1024 refuses (logged, retried).

A slot's sockets stay open in the supervisor while its worker is replaced (a crash, a reload,
``--max-requests``), so connections waiting in their queues are served by the successor. They
are closed only when the slot goes away (SIGTTOU), before its worker is told to drain, so that
the worker's last accept leaves nothing behind.
"""

from __future__ import annotations

import socket
import sys
from typing import Dict, List

from ..config import Config
from ..server.listener import bind_address, bind_like, listen_addresses

# SO_REUSEPORT balances TCP connections only on Linux; elsewhere (BSDs, macOS) one socket wins.
REUSE_PORT_BALANCES = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class WorkerSockets:
    def __init__(self, config: Config) -> None:
        self._backlog = config.backlog
        self.reuse_port = config.reuse_port and REUSE_PORT_BALANCES
        self.socket_files: List[str] = []  # Unix socket files we created, to remove at exit
        self._shared: List[socket.socket] = []
        self._first: List[socket.socket] = []  # slot 0's per-slot sockets: the addresses to copy
        self._slots: Dict[int, List[socket.socket]] = {}
        try:
            for address in listen_addresses(config):
                per_slot = self.reuse_port and address.kind == "tcp"
                new = bind_address(address, config, self.socket_files, reuse_port=per_slot)
                (self._first if per_slot else self._shared).extend(new)
        except BaseException:
            self.close()
            raise
        if self._first:
            self._slots[0] = list(self._first)

    def all(self) -> List[socket.socket]:
        """Every listening socket, once (what ``describe`` should list)."""
        return self._shared + self._first

    def for_slot(self, slot: int) -> List[int]:
        """The file descriptors a worker in ``slot`` serves; a new slot's sockets are bound now."""
        if self._first and slot not in self._slots:
            made: List[socket.socket] = []
            try:
                for sock in self._first:
                    made.append(bind_like(sock, self._backlog))
            except BaseException:
                for sock in made:
                    sock.close()
                raise
            self._slots[slot] = made
        return [sock.fileno() for sock in self._shared + self._slots.get(slot, [])]

    def prebind(self, slots: int) -> None:
        """Bind slots 0 .. slots-1 now (before dropping privileges, which a low port needs)."""
        for slot in range(slots):
            self.for_slot(slot)

    def release(self, slot: int) -> None:
        """The slot goes away: close its own sockets (never slot 0's, which define the addresses)."""
        if slot == 0:
            return
        for sock in self._slots.pop(slot, []):
            sock.close()

    def close(self) -> None:
        for sockets in self._slots.values():
            for sock in sockets:
                sock.close()
        for sock in self._shared + self._first:
            sock.close()
        self._slots.clear()
