"""What every connection of one server shares. [loop]

The config and the app, the pool and the loop's Mailbox, the environ template, the registry of
open connections, the byte budgets, the deadline wheel and the reset watch, the counters. Made
once by ``start_server``; connections and their request cycles read it.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from typing import Any, Callable, Coroutine, Dict, Optional, Protocol, Set, Tuple

import h11

from ..accesslog import AccessFormatter
from ..asgi.mounts import Mounts
from ..config import Config
from ..errors import ConfigError
from ..http.head import Head, HeadLimits
from ..log import error_log
from ..static.mounts import StaticMounts
from ..types import Environ, WSGIApp
from ..wsgi.app import FileWrapper
from ..wsgi.bridge import Mailbox
from ..wsgi.environ import EnvironBuilder
from ..wsgi.interrupt import ShieldedMailbox
from ..wsgi.pool import ThreadPool
from ..wsgi.proxy import TrustedProxies, apply_proxy_headers
from ..wsgi.spool import SpoolDisk, check_directory
from .deadlines import DeadlineWheel, resolution_for
from .gonewatch import GoneWatch
from .listener import ConnectionGate
from .seam import Cycle
from .sendfile import FileSender
from .slowlog import SlowRequestWatch
from .stats import Stats

SERVER_HEADER = b"asyncwsgi"
# The paths the loop answers itself (``probes``), by kind.
HEALTH, READY, STATS = "health", "ready", "stats"


class Registered(Protocol):
    """What the server and the probes ask of an open connection (``connection.protocol``)."""

    cycle: Optional[Cycle]  # the request it serves, if any

    def shutdown(self) -> None:
        """The server drains: close after the current response, or after a short grace."""

    def abort(self) -> None: ...


class ByteBudget:
    """Bytes the loop may hold on behalf of requests, across all connections; each piece is
    reserved before it is kept, so the total never passes ``capacity``."""

    __slots__ = ("capacity", "used")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0

    def reserve(self, size: int) -> bool:
        if self.used + size > self.capacity:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size


# Given this process's stats snapshot: the group's totals, and each worker slot's stats.
FleetView = Callable[[Dict[str, Any]], Tuple[Dict[str, Any], Dict[int, Dict[str, Any]]]]


class ServerContext:
    """Config, app, pool, environ template and the registry of open connections."""

    def __init__(
        self,
        config: Config,
        app: WSGIApp,
        loop: asyncio.AbstractEventLoop,
        pool: ThreadPool,
        mounts: Optional[Mounts] = None,
    ) -> None:
        self.config = config
        self.app = app
        # ASGI apps served on the loop under path prefixes (--mount); None when there are none.
        self.mounts = mounts if mounts else None
        # Directories served by the loop under path prefixes (--static; ConfigError for a missing
        # one); None when there are none.
        self.static = StaticMounts(config.static) if config.static else None
        self.static_cache_control = config.static_cache_control.encode("latin-1")  # (checked: a header value)
        # The tasks of mounted ASGI apps' requests and WebSockets, cancelled if any outlive the drain.
        self.asgi_tasks: Set[asyncio.Task[None]] = set()
        # Each mount's lifespan state (copied into its request scopes); None: no lifespan support.
        self.lifespan_states: Dict[str, Optional[Dict[str, Any]]] = {}
        self.loop = loop
        # What the pool's threads hand to this loop (responses, resume-reading), batched; shielded
        # from interruptions with --interrupt-on-timeout (wsgi/interrupt.py).
        self.mailbox = ShieldedMailbox(loop) if config.interrupt_on_timeout else Mailbox(loop)
        self.pool = pool
        self.environ = EnvironBuilder(
            url_scheme="https" if config.certfile is not None else config.url_scheme,
            multiprocess=False,
            file_wrapper=FileWrapper,
            script_name=config.root_path,
        )
        # Set when --proxy-headers is on: whose Forwarded / X-Forwarded-* headers to believe.
        self.trusted_proxies = TrustedProxies(config.forwarded_allow_ips) if config.proxy_headers else None
        # Who may see thread stacks at the stats endpoint (?stacks=1), and send --deadline-header.
        self.trusted_peers = TrustedProxies(config.forwarded_allow_ips)
        # --deadline-header as an environ key (HTTP_X_REQUEST_DEADLINE), or None.
        header = config.deadline_header
        self.deadline_key = None if header is None else "HTTP_" + header.upper().replace("-", "_")
        # Set when --proxy-protocol is on: which peers start their connections with a PROXY header.
        self.proxy_protocol_peers = TrustedProxies(config.forwarded_allow_ips) if config.proxy_protocol else None
        self.connections: Set[Registered] = set()
        self.stats = Stats()
        # Under --workers: the whole group's stats around this worker's own (process/fleet.py
        # sets it through Server.report_fleet); None: the stats path reports this process.
        self.fleet: Optional[FleetView] = None
        self.access_formatter = AccessFormatter(config.access_log_format)
        # Paths the loop answers itself (health, readiness, stats), when configured.
        self.local_paths = local_paths(config.health_path, config.ready_path, config.stats_path)
        # Read-side deadlines of every connection, on one loop timer (see deadlines.py).
        self.deadlines = DeadlineWheel(
            loop,
            resolution_for(
                config.keep_alive,
                config.header_timeout,
                config.body_timeout,
                config.queue_timeout,
                1.0 if config.body_min_rate else 0.0,
                2.0,  # protocol's linger
            ),
        )
        self.gate = ConnectionGate(config.max_connections, config.max_connections_per_ip)
        # What every request head is checked against (http/head.py).
        self.head_limits = HeadLimits(
            config.max_request_line_bytes,
            config.max_header_bytes,
            config.max_header_count,
            config.max_head_bytes,
            config.max_body_bytes,
        )
        # Request bodies read whole before the app runs, across all connections.
        self.request_buffers = ByteBudget(config.request_buffer_total_bytes)
        # Response bytes held for slow readers beyond --output-buffer-bytes, across all connections.
        self.response_buffers = ByteBudget(config.response_buffer_total_bytes)
        # Spool files for what the buffers above cannot hold, within --spool-total-bytes (None: off).
        self.spool = SpoolDisk(config.spool_dir, config.spool_total_bytes) if config.spools else None
        if self.spool is not None:
            problem = check_directory(config.spool_dir)
            if problem is not None and config.spool_dir is not None:
                raise ConfigError(f"--spool-dir {problem}")
            if problem is not None:
                error_log.warning(
                    "spool files cannot be made: %s; transfers past the memory buffers will hold their "
                    "threads (set --spool-dir, or --spool-total-bytes 0)",
                    problem,
                )
        # A response's spool file cap (0: responses are not spooled).
        self.response_spool_bytes = config.response_spool_bytes if config.response_buffer_bytes else 0
        # Sockets of requests waiting for a thread, watched for resets without being read.
        self.gone = GoneWatch(loop)
        self.slow_watch = SlowRequestWatch(loop, config.slow_request_log) if config.slow_request_log else None
        # Requests cut off at --request-timeout whose app still runs: each holds its thread.
        self.stuck: Set[object] = set()
        self.draining = False  # the server is shutting down: finish current responses, then close
        # Files sent by the kernel to plain sockets, on either loop (sendfile.py).
        self.file_sender = FileSender(loop)
        self.server_header: Optional[bytes] = SERVER_HEADER if config.server_header else None
        self.on_connection_lost: Optional[Callable[[], None]] = None
        self._date_second = -1
        self._date = b""
        self._header_lines: Tuple[bytes, ...] = ()
        self._server_addresses: Dict[Tuple[str, int], Tuple[str, str]] = {}

    def environ_for(
        self,
        request: h11.Request,
        head: Head,
        server: Tuple[str, str],
        client: Optional[Tuple[str, str]],
        tls_ended: bool,
    ) -> Environ:
        """The WSGI environ of an accepted request head (its ``wsgi.input`` is set later).

        ``tls_ended``: a trusted balancer ended TLS for this client (PROXY v2's SSL TLV).
        """
        environ = self.environ.build(
            request.method,
            request.target,
            request.http_version,
            head.fields,
            head.path,
            head.query,
            server,
            client,
            None,
        )
        if tls_ended:
            environ["wsgi.url_scheme"] = "https"
        if self.trusted_proxies is not None:
            apply_proxy_headers(environ, client[0] if client else None, self.trusted_proxies)
        return environ

    def run_asgi(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a mounted app's request or WebSocket as a task the shutdown can find."""
        task = self.loop.create_task(coro)
        self.asgi_tasks.add(task)
        task.add_done_callback(self.asgi_tasks.discard)
        return task

    def lifespan_state(self, prefix: str) -> Optional[Dict[str, Any]]:
        return self.lifespan_states.get(prefix)

    def server_address(self, host: str, port: int) -> Tuple[str, str]:
        """SERVER_NAME and SERVER_PORT for a local address, shared by every connection to it."""
        key = (host, port)
        address = self._server_addresses.get(key)
        if address is None:
            address = (str(host), str(port))
            if len(self._server_addresses) < 64:  # local addresses are few; bound it anyway
                self._server_addresses[key] = address
        return address

    def date_header(self) -> bytes:
        """RFC 9110 §6.6.1 Date, formatted at most once a second."""
        now = int(time.time())
        if now != self._date_second:
            # (Also called by the app's threads, for a response they write themselves: the new
            # second is set last, so none of them reads it with the last second's lines.)
            date = formatdate(now, usegmt=True).encode("ascii")
            lines = [b"Date: " + date]
            if self.server_header is not None:
                lines.append(b"Server: " + self.server_header)
            self._date = date
            self._header_lines = tuple(lines)
            self._date_second = now
        return self._date

    def header_lines(self) -> Tuple[bytes, ...]:
        """The header lines the server adds to every response (Date, Server), ready to write."""
        self.date_header()
        return self._header_lines


def local_paths(health: Optional[str], ready: Optional[str], stats: Optional[str]) -> Dict[bytes, str]:
    """The configured probe paths (--health-path, --ready-path, --stats-path), by kind."""
    paths = {}
    for path, kind in ((health, HEALTH), (ready, READY), (stats, STATS)):
        if path:
            paths[path.encode("latin-1")] = kind
    return paths
