"""A gunicorn worker class: gunicorn's arbiter, config and hooks; asyncwsgi's loop and pool inside. [main]

    gunicorn -k asyncwsgi.gunicorn.Worker -w 4 --threads 8 myproject.wsgi:application

Each gunicorn worker process runs one asyncwsgi server on the sockets gunicorn bound. These
gunicorn settings carry over: ``threads``, ``keepalive``, ``graceful_timeout``,
``worker_connections`` (as --max-connections), ``limit_request_line``,
``limit_request_fields``, ``limit_request_field_size``, ``max_requests`` (with its jitter:
the worker finishes its requests and exits, and the arbiter starts a fresh one), the TLS
settings, ``accesslog`` with ``access_log_format`` (gunicorn's atoms work), and ``timeout``: the
worker's heartbeat is sent from the event loop, so a loop that stops turning gets the worker
killed and replaced. SIGTERM drains gracefully; SIGQUIT and SIGINT exit at once, as in gunicorn.
Options gunicorn has no setting for come from ``ASYNCWSGI_*`` variables
(``ASYNCWSGI_REQUEST_TIMEOUT=20``). With a request timeout, a worker that has had as many
requests stuck past it as it has threads, for as long again, exits, and the arbiter starts a
fresh one (spare threads serve meanwhile).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from typing import Any, Dict, Mapping, Optional

from gunicorn.workers.base import Worker as _GunicornWorker

from ..config import Config
from ..server.server import start_server
from .importer import import_mounts
from .loops import resolve_loop
from .settings import env_options

# How often the loop checks for a signal from the arbiter.
_TICK_SECONDS = 0.1


def config_from_gunicorn(cfg: Any, fds: list[int], environ: Optional[Mapping[str, str]] = None) -> Config:
    """The asyncwsgi Config equivalent to a gunicorn config, serving the given listening fds."""
    options: Dict[str, Any] = {
        "bind": tuple(f"fd://{fd}" for fd in fds),
        "threads": max(1, int(cfg.threads)),
        "keep_alive": float(cfg.keepalive),
        "graceful_timeout": float(cfg.graceful_timeout),
        "max_connections": max(1, int(cfg.worker_connections)),
        "access_log": cfg.accesslog is not None,
        "log_level": "info",
    }
    if cfg.limit_request_line:
        options["max_request_line_bytes"] = max(64, int(cfg.limit_request_line))
    if cfg.limit_request_fields:
        options["max_header_count"] = int(cfg.limit_request_fields)
    if cfg.limit_request_field_size:
        options["max_header_bytes"] = max(64, int(cfg.limit_request_field_size))
    if cfg.accesslog is not None and cfg.access_log_format:
        options["access_log_format"] = cfg.access_log_format
    # gunicorn believes X-Forwarded-Proto (its secure_scheme_headers) from forwarded_allow_ips,
    # 127.0.0.1 and ::1 by default, so that an app behind a local nginx that ends TLS sees https.
    # Our proxy headers do that and more (X-Forwarded-For becomes REMOTE_ADDR, as uvicorn's
    # gunicorn worker does too), and strip those headers from untrusted peers.
    options["proxy_headers"] = True
    options["forwarded_allow_ips"] = _ip_list(cfg.forwarded_allow_ips)
    proxy_protocol = getattr(cfg, "proxy_protocol", False)  # a bool in older gunicorns, "off"/"auto"/... in newer
    if proxy_protocol and str(proxy_protocol).lower() not in ("off", "false"):
        # One allow-list serves both here; the balancer that sends PROXY headers is the one to trust.
        options["proxy_protocol"] = True
        options["forwarded_allow_ips"] = _ip_list(cfg.proxy_allow_ips)
    if cfg.is_ssl:
        options.update(certfile=cfg.certfile, keyfile=cfg.keyfile)
        if cfg.ca_certs:
            options.update(ca_certs=cfg.ca_certs, cert_reqs={0: "none", 1: "optional", 2: "required"}[cfg.cert_reqs])
    # What gunicorn has no setting for (--request-timeout, the buffers, ...) comes from
    # ASYNCWSGI_* variables, as for the command; where gunicorn has one, gunicorn's wins.
    for name, value in env_options(environ if environ is not None else os.environ).items():
        options.setdefault(name, value)
    return Config(**options)


def _ip_list(value: Any) -> str:
    """gunicorn's allow-lists are lists of strings (or one comma-separated string)."""
    items = value.split(",") if isinstance(value, str) else value
    return ",".join(str(item).strip() for item in items if str(item).strip())


class Worker(_GunicornWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """``gunicorn -k asyncwsgi.gunicorn.Worker``."""

    def init_process(self) -> None:
        # Our loggers write through gunicorn's handlers, so --error-logfile/--access-logfile apply.
        for ours, theirs in (("asyncwsgi.error", self.log.error_log), ("asyncwsgi.access", self.log.access_log)):
            logger = logging.getLogger(ours)
            logger.handlers = list(theirs.handlers)
            logger.setLevel(theirs.level or logging.INFO)
            logger.propagate = False
        super().init_process()  # loads the app, installs gunicorn's signal handlers, calls run()

    def run(self) -> None:
        config = config_from_gunicorn(self.cfg, [sock.fileno() for sock in self.sockets])
        _, factory = resolve_loop("auto")
        loop = factory()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve(config))
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    async def _serve(self, config: Config) -> None:
        # ASYNCWSGI_MOUNT (gunicorn has no such setting): ASGI apps beside the WSGI one.
        mounts = import_mounts(config.mount, app_dir=None)
        server = await start_server(self.wsgi, dataclasses.replace(config, mount=()), mounts=mounts)
        loop = asyncio.get_running_loop()
        beat = max(0.5, min(self.timeout / 2.0, 5.0)) if self.timeout else 1.0
        next_beat = 0.0
        stuck_since: Optional[float] = None
        parent = self.ppid
        try:
            while self.alive:
                now = loop.time()
                if now >= next_beat:
                    self.notify()  # from the loop itself: a stuck loop stops the heartbeat
                    next_beat = now + beat
                if os.getppid() != parent:
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                if server.stats.requests >= self.max_requests:
                    self.log.info("Autorestarting worker after current request.")
                    break
                if config.request_timeout and server.threads_lost():
                    stuck_since = now if stuck_since is None else stuck_since
                    if now - stuck_since >= config.request_timeout:
                        self.log.warning(
                            "As many requests as --threads stuck past --request-timeout: restarting the worker."
                        )
                        break
                else:
                    stuck_since = None
                await asyncio.sleep(_TICK_SECONDS)
        finally:
            server.close()
            await server.wait_closed()
