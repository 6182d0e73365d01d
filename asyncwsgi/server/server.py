"""Listeners, the connection registry and graceful shutdown: the embed API. [loop]

``Server`` mirrors ``asyncio.Server`` (``sockets``, ``close()``, ``wait_closed()``,
``is_serving()``, ``serve_forever()``, ``async with``) so it drops into asyncio programs.
Nothing here installs signal handlers, configures logging or touches global state: that is
the CLI's job. The caller's running loop is used as is.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..asgi.lifespan import Lifespan
from ..asgi.mounts import Mounts
from ..config import Config
from ..errors import ConfigError
from ..log import error_log
from ..types import WSGIApp
from ..wsgi.pool import ThreadPool
from .connection.protocol import HTTPProtocol
from .context import FleetView, ServerContext
from .listener import Listener, bind_sockets, remove_socket_file
from .probes import snapshot
from .stats import Stats
from .tls import make_ssl_context

# After the graceful timeout, how long to wait for threads to notice and exit.
_THREAD_EXIT_SECONDS = 2.0


class Server:
    """A running asyncwsgi server on the current event loop."""

    def __init__(
        self,
        ctx: ServerContext,
        listeners: List[Listener],
        socket_files: List[str],
        tls: bool = False,
        lifespans: Sequence[Lifespan] = (),
    ) -> None:
        self.tls = tls  # listening with TLS (https)
        self._lifespans = lifespans  # of the mounted ASGI apps, shut down after the drain
        self._ctx = ctx
        self._listeners = listeners
        self._socket_files = socket_files  # Unix socket files we created, removed at shutdown
        self._all_closed = asyncio.Event()
        self._forced = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closing = False
        self._closed_task: Optional[asyncio.Task[None]] = None
        ctx.on_connection_lost = self._on_connection_lost
        ctx.gate.on_release = self._on_connection_lost

    @property
    def stats(self) -> Stats:
        """Counters since start: requests, responses by class, timeouts (see stats.py)."""
        return self._ctx.stats

    def stats_snapshot(self) -> Dict[str, Any]:
        """What the stats path reports for this process now (``probes.snapshot``)."""
        return snapshot(self._ctx)

    def report_fleet(self, view: FleetView) -> None:
        """Have the stats path report a group of processes (``view``), not this one alone."""
        self._ctx.fleet = view

    def threads_lost(self) -> bool:
        """As many requests as --threads are stuck past --request-timeout, each in a thread
        Python cannot stop. Spare threads may serve meanwhile, but only a fresh process gets the
        lost ones back: the command and the gunicorn worker recycle on this."""
        ctx = self._ctx
        return len(ctx.stuck) >= ctx.pool.threads

    @property
    def config(self) -> Config:
        return self._ctx.config

    @property
    def sockets(self) -> Tuple[socket.socket, ...]:
        return tuple(listener.sock for listener in self._listeners)

    @property
    def connections(self) -> int:
        """Open client connections (a gauge for tests and monitoring)."""
        return len(self._ctx.connections)

    def is_serving(self) -> bool:
        return not self._closing and any(listener.is_serving() for listener in self._listeners)

    def stop_accepting(self) -> None:
        """Accept no more connections, and leave those queued in the listening sockets to other
        processes listening on them; what this server has, it serves. A supervised worker whose
        threads are all stuck does this while its successor starts. ``close`` still drains."""
        for listener in self._listeners:
            listener.pause()

    def close(self) -> None:
        """Stop accepting; close idle connections now and busy ones after their response."""
        if self._closing:
            return
        self._closing = True
        self._stopping.set()
        self._ctx.draining = True
        for listener in self._listeners:
            listener.stop()
        for protocol in list(self._ctx.connections):
            protocol.shutdown()
        self._on_connection_lost()

    def abort(self) -> None:
        """Close every connection at once, in-flight requests included (a second Ctrl-C)."""
        self.close()
        self._forced.set()

    async def wait_closed(self) -> None:
        """Wait until shutdown is complete: connections closed, threads exited.

        In-flight requests get ``graceful_timeout`` seconds; then their connections are aborted.
        """
        if not self._closing:
            self.close()
        if self._closed_task is None:
            self._closed_task = asyncio.ensure_future(self._shutdown())
        await asyncio.shield(self._closed_task)

    async def serve_forever(self) -> None:
        """Serve until cancelled or closed; either way, return after a graceful shutdown."""
        try:
            await self._stopping.wait()
        finally:
            self.close()
            await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()
        await self.wait_closed()

    # --- internals ----------------------------------------------------------------------------

    def _on_connection_lost(self) -> None:
        # The gate counts a connection from accept on, so one still starting (a TLS handshake,
        # or accepted from the backlog at close) is waited for too, not dropped.
        if self._closing and not self._ctx.connections and not self._ctx.gate.open:
            self._all_closed.set()

    async def _shutdown(self) -> None:
        ctx = self._ctx
        waits = [asyncio.ensure_future(self._all_closed.wait()), asyncio.ensure_future(self._forced.wait())]
        try:
            await asyncio.wait(waits, timeout=ctx.config.graceful_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if ctx.connections:
            error_log.warning(
                "graceful timeout: closing %d connection(s) with requests in flight", len(ctx.connections)
            )
            for protocol in list(ctx.connections):
                protocol.abort()
            await asyncio.sleep(0)  # let connection_lost callbacks run and wake blocked threads
        if ctx.asgi_tasks:
            # Mounted apps still running with no connection left (one that ignores
            # http.disconnect): cancelled, and given a moment to clean up.
            for task in list(ctx.asgi_tasks):
                task.cancel()
            await asyncio.wait(list(ctx.asgi_tasks), timeout=_THREAD_EXIT_SECONDS)
        for lifespan in self._lifespans:  # in mount order, once no request is left
            await lifespan.shutdown(ctx.config.graceful_timeout)
        ctx.deadlines.close()
        ctx.gone.close()
        if ctx.slow_watch is not None:
            ctx.slow_watch.close()
        ctx.pool.shutdown()
        stuck = await _join_threads(ctx.pool, _THREAD_EXIT_SECONDS)
        if stuck:
            error_log.warning("%d thread(s) still running the app after shutdown", len(stuck))
        for path in self._socket_files:
            remove_socket_file(path)


async def _join_threads(pool: ThreadPool, timeout: float) -> List[threading.Thread]:
    """Join the pool's threads without blocking the loop (and without the loop's default executor)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[List[threading.Thread]] = loop.create_future()

    def report(alive: List[threading.Thread]) -> None:
        if not done.done():
            done.set_result(alive)

    def join() -> None:
        loop.call_soon_threadsafe(report, pool.join(timeout))

    joiner = threading.Thread(target=join, name="asyncwsgi-shutdown", daemon=True)
    joiner.start()
    alive = await done
    joiner.join(1.0)  # it has only to return: wait_closed() must leave no thread of ours behind
    return alive


async def start_server(
    app: WSGIApp,
    config: Optional[Config] = None,
    *,
    mounts: Optional[Mapping[str, Any]] = None,
    **options: Any,
) -> Server:
    """Start serving ``app`` on the running loop and return once listening.

    Options are ``Config`` fields (``host``, ``port``, ``threads``, ...); with ``config`` given,
    they override its values. Port 0 picks a free port: read it back from ``server.sockets``.

    ``mounts`` maps path prefixes to ASGI 3 apps served on this loop beside ``app`` (see
    docs/mixing.md). Their lifespan startup runs before this returns, in the order given; a
    failure raises ``StartupFailed`` and nothing is left listening.
    """
    config = Config.from_options(config, **options)
    if config.mount:
        raise ConfigError("--mount names apps for the command to import: pass start_server(mounts={prefix: app})")
    table = Mounts((mounts or {}).items())  # ConfigError for a bad prefix or a non-ASGI app
    config.check_websocket_options(mounted=bool(table.in_order))
    command_only = config.command_options_set()
    running = "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
    if config.loop == running:
        command_only.remove("--loop")  # asked for the loop it runs on: honoured
    if command_only:
        # An option that cannot be honoured is refused, never ignored: these need the command
        # (processes, privileges, a pid file, the loop choice, reloading).
        raise ConfigError(
            f"{', '.join(command_only)}: only the asyncwsgi command (or gunicorn's arbiter) can do this; "
            "start_server serves on the running loop in this process"
        )
    loop = asyncio.get_running_loop()
    pool = ThreadPool(config.threads, config.queue_size, config.spares)
    ctx = ServerContext(config, app, loop, pool, table)

    ssl_context = make_ssl_context(config)  # raises ConfigError for unreadable certificates
    sockets, socket_files = bind_sockets(config)  # raises OSError before anything else is started
    lifespans = [Lifespan(mount.app, mount.prefix) for mount in table.in_order]
    try:
        for lifespan in lifespans:
            await lifespan.startup(config.graceful_timeout)
            ctx.lifespan_states[lifespan.name] = lifespan.state
    except BaseException:
        for lifespan in lifespans:
            await lifespan.shutdown(config.graceful_timeout)
        for sock in sockets:
            sock.close()
        for path in socket_files:
            remove_socket_file(path)
        raise

    def factory(client: Optional[Tuple[str, str]]) -> HTTPProtocol:
        return HTTPProtocol(ctx, client)

    listeners = [Listener(sock, ctx.gate, factory, ssl_context, config.header_timeout) for sock in sockets]
    pool.start()
    for listener in listeners:
        listener.start()
    return Server(ctx, listeners, socket_files, tls=ssl_context is not None, lifespans=lifespans)


async def serve(app: WSGIApp, config: Optional[Config] = None, **options: Any) -> None:
    """Serve ``app`` until the calling task is cancelled, then shut down gracefully."""
    server = await start_server(app, config, **options)
    await server.serve_forever()


def describe(server: Server) -> List[str]:
    """Human-readable addresses the server listens on, for the startup log line."""
    out = []
    scheme = "https" if server.tls else "http"
    for sock in server.sockets:
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            out.append(f"unix:{name}" + (" (TLS)" if server.tls else ""))
        elif sock.family == socket.AF_INET6:
            out.append(f"{scheme}://[{name[0]}]:{name[1]}")
        else:
            out.append(f"{scheme}://{name[0]}:{name[1]}")
    return out
