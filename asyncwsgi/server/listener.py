"""Listening sockets and the accept loop. [loop]

We accept connections ourselves (``sock_accept`` plus ``connect_accepted_socket``) rather than
through ``loop.create_server``: asyncio has no public way to stop accepting for a while, and we
need one. At ``--max-connections`` the accept loop waits, so further clients stay in the
kernel's listen backlog (and feel it as connect latency) instead of being accepted and starved.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import stat
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import Config
from ..http import plain
from ..http.binds import BindAddress, parse_bind
from ..log import error_log

# accept() errors that mean "out of resources for now": back off instead of spinning.
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_RESOURCE_BACKOFF_SECONDS = 0.1
# While accept() keeps failing for want of resources, a summary line at most this often (the
# back-off retries ten times a second, and a line per retry buried every other log line).
_RESOURCE_LOG_SECONDS = 5.0
# Connections accepted in one go before yielding to the rest of the loop.
_ACCEPT_BATCH = 64

# Sent (best effort, without a protocol) to a client over --max-connections-per-ip.
_TOO_MANY_FROM_IP = plain.closing(503, [(b"Retry-After", b"1")])


# Port 0 on a name with several addresses: how many kernel-chosen ports to try before giving up
# (a try fails only when the port the first family got is taken in another).
_EPHEMERAL_BIND_ATTEMPTS = 8


def listen_addresses(config: Config) -> List[BindAddress]:
    """Where the config says to listen: its --bind list, or else --fd, --uds or --host/--port."""
    if config.bind:
        return [parse_bind(spec) for spec in config.bind]
    if config.fd is not None:
        return [BindAddress("fd", fd=config.fd)]
    if config.uds is not None:
        return [BindAddress("unix", path=config.uds)]
    return [BindAddress("tcp", host=config.host, port=config.port)]


def bind_sockets(config: Config) -> Tuple[List[socket.socket], List[str]]:
    """Create the listening sockets, bound, listening and non-blocking; also the Unix socket
    files this server created (to remove at shutdown)."""
    sockets: List[socket.socket] = []
    created: List[str] = []
    try:
        for address in listen_addresses(config):
            sockets.extend(bind_address(address, config, created))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets, created


def bind_address(
    address: BindAddress, config: Config, created: List[str], reuse_port: bool = False
) -> List[socket.socket]:
    """The listening sockets for one address (a name may resolve to several); a Unix socket
    file made here is appended to ``created``. ``reuse_port``: TCP sockets get SO_REUSEPORT."""
    if address.kind == "tcp":
        new = _bind_tcp(address.host, address.port, reuse_port)
    elif address.kind == "unix":
        mode = None if config.uds_mode is None else int(config.uds_mode, 8)
        new = [_bind_unix(address.path, mode)]
        created.append(address.path)
    elif address.kind == "fd":
        new = [socket.socket(fileno=address.fd)]
    else:
        new = _systemd_sockets()
    try:
        for sock in new:
            sock.setblocking(False)
            if address.kind in ("tcp", "unix"):
                sock.listen(config.backlog)
    except BaseException:
        for sock in new:
            sock.close()
        raise
    return new


def bind_like(sock: socket.socket, backlog: int) -> socket.socket:
    """Another SO_REUSEPORT socket listening on ``sock``'s address: the kernel then spreads new
    connections between them."""
    twin = socket.socket(sock.family, sock.type, sock.proto)
    try:
        _tcp_options(twin, reuse_port=True)
        twin.bind(sock.getsockname())
        twin.setblocking(False)
        twin.listen(backlog)
    except BaseException:
        twin.close()
        raise
    return twin


def _bind_unix(path: str, mode: Optional[int]) -> socket.socket:
    remove_socket_file(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if mode is not None:
            os.chmod(path, mode)
    except BaseException:
        sock.close()
        raise
    return sock


# sd_listen_fds(3): passed sockets start at this descriptor.
_SD_LISTEN_FDS_START = 3


def _systemd_sockets() -> List[socket.socket]:
    """The sockets systemd passed us (socket activation), checked to be meant for this process."""
    count, pid = os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID")
    if not count or not count.isdigit() or int(count) < 1:
        raise OSError(errno.EINVAL, "--bind systemd: no sockets passed (LISTEN_FDS is not set)")
    if pid != str(os.getpid()):
        raise OSError(errno.EINVAL, f"--bind systemd: LISTEN_PID {pid} is not this process ({os.getpid()})")
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # as sd_listen_fds(unset=1): children must not take them too
    return [socket.socket(fileno=fd) for fd in range(_SD_LISTEN_FDS_START, _SD_LISTEN_FDS_START + int(count))]


def _tcp_options(sock: socket.socket, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        # One socket per family, as asyncio does: don't let IPv6 also claim IPv4.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def _bind_tcp(host: str, port: int, reuse_port: bool = False) -> List[socket.socket]:
    """One socket per address ``host`` resolves to (IPv4 and IPv6 for a wildcard or a dual name).

    With port 0 every socket gets the port the kernel gave the first, so the name means one
    port; if that port is taken in another family, the whole set is tried again.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    attempts_left = _EPHEMERAL_BIND_ATTEMPTS if port == 0 else 1
    while True:
        try:
            return _bind_tcp_set(infos, reuse_port)
        except OSError as exc:
            attempts_left -= 1
            if exc.errno != errno.EADDRINUSE or attempts_left == 0:
                raise


def _bind_tcp_set(infos: List[Tuple[Any, ...]], reuse_port: bool) -> List[socket.socket]:
    sockets: List[socket.socket] = []
    seen = set()
    chosen = 0  # the port of the first socket, when the address asks for any (port 0)
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            _tcp_options(sock, reuse_port)
            if chosen:
                address = (address[0], chosen, *address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                message = f"error while attempting to bind on address {address!r}: {exc.strerror}"
                raise OSError(exc.errno, message) from None
            if address[1] == 0:
                chosen = sock.getsockname()[1]
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def discard_socket_files(paths: List[str]) -> None:
    """At exit, remove the Unix socket files we made, where we still may: after --user the
    directory may not be the user's to write, and a later start replaces what is left."""
    for path in paths:
        try:
            remove_socket_file(path)
        except OSError as exc:
            error_log.debug("could not remove %s: %s", path, exc)


def remove_socket_file(path: str) -> None:
    """Remove a stale Unix socket left by an earlier run; never remove anything else."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


class ConnectionGate:
    """Counts open connections (in total and per client IP) and makes accept loops wait for room."""

    def __init__(self, max_connections: int, max_per_ip: int) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.open = 0
        self._per_ip: Dict[str, int] = {}
        self._room: Optional[asyncio.Event] = None
        self.on_release: Optional[Callable[[], None]] = None  # called after each release

    def has_room(self) -> bool:
        return self.open < self.max_connections

    async def wait_for_room(self) -> None:
        while self.open >= self.max_connections:
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()

    def admit(self, ip: Optional[str]) -> bool:
        """Count a new connection; False if its IP is over the per-IP limit (then not counted)."""
        if ip is not None and self.max_per_ip:
            count = self._per_ip.get(ip, 0)
            if count >= self.max_per_ip:
                return False
            self._per_ip[ip] = count + 1
        self.open += 1
        return True

    def release(self, ip: Optional[str]) -> None:
        self.open -= 1
        if ip is not None and self.max_per_ip:
            count = self._per_ip.get(ip, 1) - 1
            if count:
                self._per_ip[ip] = count
            else:
                self._per_ip.pop(ip, None)
        if self._room is not None and self.open < self.max_connections:
            self._room.set()
            self._room = None
        if self.on_release is not None:
            self.on_release()


ProtocolFactory = Callable[[Optional[Tuple[str, str]]], asyncio.Protocol]
"""Makes the protocol for a connection, given the client's (ip, port), or None on Unix sockets."""


class Listener:
    """Accepts on one listening socket until closed, respecting the gate."""

    def __init__(
        self,
        sock: socket.socket,
        gate: ConnectionGate,
        factory: ProtocolFactory,
        ssl_context: Optional[ssl.SSLContext] = None,
        handshake_timeout: float = 0.0,
    ) -> None:
        self.sock = sock
        self._gate = gate
        self._factory = factory
        self._ssl = ssl_context
        # The TLS handshake comes before the protocol sees the connection, so it gets its own
        # deadline: the header timeout, which the head would otherwise have had to itself.
        self._handshake_timeout = handshake_timeout or None
        self._task: Optional[asyncio.Task[None]] = None
        self._is_unix = sock.family == socket.AF_UNIX
        self._shortage = ShortageLog()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    def is_serving(self) -> bool:
        return self._task is not None and not self._task.done()

    def pause(self) -> None:
        """Stop accepting, and leave the socket's queue to whoever else listens on it (a
        supervised worker's successor); ``stop`` closes it later."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    def stop(self) -> None:
        """Stop accepting and close the socket; connections already accepted are not touched.

        Connections already in the kernel's accept queue are taken first and served (each gets
        its first request answered with ``Connection: close``): closing a listening socket
        resets them, and their clients, having connected, may already have sent a request.
        """
        task, self._task = self._task, None
        if task is None:
            self.sock.close()
            return
        loop = asyncio.get_running_loop()
        while self._gate.has_room():
            try:
                conn, address = self.sock.accept()
            except OSError:  # BlockingIOError: the queue is empty
                break
            self._take(loop, conn, address)
        task.cancel()
        # The cancelled wait unregisters the socket as it unwinds; close after that, so the
        # selector never holds a closed (and possibly reused) file descriptor.
        loop.call_soon(self.sock.close)

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        gate = self._gate
        sock = self.sock
        while True:
            await gate.wait_for_room()
            # Wait for a connection, then accept it ourselves: with loop.sock_accept, a task
            # cancelled (by stop) just after the loop accepted would drop that connection.
            await self._readable(loop)
            for _ in range(_ACCEPT_BATCH):
                if not gate.has_room():
                    break
                try:
                    conn, address = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno in _RESOURCE_ERRORS:
                        self._shortage.failed(exc)
                        await asyncio.sleep(_RESOURCE_BACKOFF_SECONDS)
                    else:
                        error_log.debug("accept() failed: %s", exc)
                    break
                if self._shortage.failures:
                    self._shortage.recovered()
                self._take(loop, conn, address)

    async def _readable(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until the listening socket has a connection waiting."""
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    def _take(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, address: object) -> None:
        client = None if self._is_unix else (str(address[0]), str(address[1]))  # type: ignore[index]
        ip = None if client is None else client[0]
        if not self._gate.admit(ip):
            error_log.info("refusing connection from %s: over --max-connections-per-ip", ip)
            try:
                conn.send(_TOO_MANY_FROM_IP)
            except OSError:
                pass
            conn.close()
            return
        conn.setblocking(False)
        loop.create_task(self._connect(loop, conn, client))

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, client: Optional[Tuple[str, str]]
    ) -> None:
        made: List[asyncio.Protocol] = []

        def factory() -> asyncio.Protocol:
            made.append(self._factory(client))
            return made[0]

        try:
            if self._ssl is None:
                await loop.connect_accepted_socket(factory, conn)
            else:
                await loop.connect_accepted_socket(
                    factory, conn, ssl=self._ssl, ssl_handshake_timeout=self._handshake_timeout
                )
        except Exception as exc:  # the connection died before it started: reset, or a failed handshake
            error_log.debug("could not start connection from %s: %r", client, exc)
            # Once connection_made has run, connection_lost releases the slot; before, we do.
            if not made or getattr(made[0], "transport", None) is None:
                self._gate.release(None if client is None else client[0])
            conn.close()


class ShortageLog:
    """Logs accept() failing for want of resources: the first failure, then a count at most every
    ``_RESOURCE_LOG_SECONDS`` while it lasts, then the recovery."""

    __slots__ = ("_clock", "_logged_at", "_since_logged", "failures")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.failures = 0  # in the current shortage
        self._since_logged = 0
        self._logged_at = 0.0

    def failed(self, exc: OSError) -> None:
        now = self._clock()
        self.failures += 1
        if self.failures == 1:
            error_log.warning("accept() failed: %s; backing off (raise the fd limit or lower --max-connections)", exc)
            self._logged_at = now
            return
        self._since_logged += 1
        if now - self._logged_at >= _RESOURCE_LOG_SECONDS:
            error_log.warning(
                "accept() still failing: %s (%d more times in %.0fs)", exc, self._since_logged, now - self._logged_at
            )
            self._since_logged = 0
            self._logged_at = now

    def recovered(self) -> None:
        error_log.warning("accept() works again after %d failures", self.failures)
        self.failures = 0
        self._since_logged = 0
