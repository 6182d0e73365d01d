"""The one configuration object, shared by the CLI, the embed API and worker processes. [any]

A ``Config`` is frozen and validated once, in ``__post_init__``; everything downstream trusts it.
Each field's metadata carries its CLI help text, so the CLI is generated from this file and
the docs and ``--help`` can never disagree about what exists. No I/O, logging or env reads here.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

from .accesslog import check_format
from .asgi.mounts import parse_spec
from .errors import ConfigError
from .http.binds import parse_bind
from .http.grammar import TOKEN
from .static.mounts import parse_spec as parse_static_spec
from .wsgi.proxy import TrustedProxies

LoopName = Literal["auto", "asyncio", "uvloop"]
LogLevel = Literal["critical", "error", "warning", "info", "debug"]
ErrorLogFormat = Literal["text", "json"]


# --interrupt-on-timeout is refused from this Python on: CPython gh-139622 (3.13), measured here
# on 3.13.0 with a lock held in a `with` around a busy loop: 9 interruptions of 20 skipped the
# `with`, the `finally` and the `except` (3.10, 3.11 and 3.12: 0 of 20).
_INTERRUPTS_ESCAPE_FROM = (3, 13)

_FIELD_NAME = re.compile(TOKEN)
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class Config:
    """Server settings. Seconds are floats, sizes are ``*_bytes`` ints, choices are Literals."""

    host: str = _opt("127.0.0.1", "Interface to bind (0.0.0.0 for all IPv4, :: for all IPv6).")
    port: int = _opt(8000, "TCP port to bind; 0 picks a free port.")
    uds: Optional[str] = _opt(None, "Serve on this Unix domain socket path instead of TCP.", metavar="PATH")
    fd: Optional[int] = _opt(
        None, "Serve on an already-bound listening socket inherited as this file descriptor.", metavar="N"
    )
    bind: Tuple[str, ...] = _opt(
        (),
        "Listen here; repeat for several listeners: HOST:PORT, [IPV6]:PORT, unix:PATH, fd://N, or "
        "systemd (socket activation). Replaces --host and --port; cannot be combined with --uds or --fd.",
        metavar="ADDRESS",
        repeat=True,
    )
    uds_mode: Optional[str] = _opt(
        None, "Permissions (octal, e.g. 660) for Unix sockets this server creates.", metavar="MODE"
    )
    workers: int = _opt(
        1,
        "Worker processes sharing the listeners, under a supervisor that restarts them "
        "(WEB_CONCURRENCY sets it when nothing else does). Each has --threads threads.",
        metavar="N",
    )
    reuse_port: bool = _opt(
        True,
        "With --workers on Linux: each worker gets its own SO_REUSEPORT socket for every TCP "
        "listener, so the kernel spreads connections evenly between workers.",
        no_help="With --workers: every worker accepts from one shared socket per listener.",
    )
    worker_timeout: float = _opt(
        30.0,
        "Under the supervisor: kill and replace a worker whose event loop sends no heartbeat for "
        "this long (0: never). Given with --workers 1, it starts the supervisor for the one worker.",
        metavar="SECONDS",
    )
    max_requests: int = _opt(
        0,
        "A worker drains and is replaced after this many requests, plus up to "
        "--max-requests-jitter (0: never). With --workers 1 it starts the supervisor for the one worker.",
        metavar="N",
    )
    max_requests_jitter: int = _opt(
        0, "Random extra requests (0..N) per worker for --max-requests, so workers don't restart together.", metavar="N"
    )
    reload: bool = _opt(
        False,
        "For development: restart the app (a fresh worker process) when a watched file changes; "
        "uses watchfiles when installed (asyncwsgi[reload]), else polls. Never use it in production.",
        no_help="Do not watch files.",
    )
    reload_dir: Tuple[str, ...] = _opt(
        (),
        "Directory --reload watches, recursively; repeat for several (default: --app-dir).",
        metavar="DIR",
        repeat=True,
    )
    reload_include: Tuple[str, ...] = _opt(
        ("*.py",),
        "File-name pattern whose changes --reload acts on; repeat for several (replaces the default *.py).",
        metavar="PATTERN",
        repeat=True,
    )
    reload_exclude: Tuple[str, ...] = _opt(
        (),
        "File or directory name pattern --reload ignores, besides the built-in ones (hidden, "
        "__pycache__, *.pyc, virtualenvs, node_modules); repeat for several.",
        metavar="PATTERN",
        repeat=True,
    )
    threads: int = _opt(8, "Threads running the WSGI app.")
    queue_size: int = _opt(
        32,
        "Requests that may wait for a free thread; beyond this, connections are not read (back-pressure through TCP).",
    )
    request_timeout: float = _opt(
        0.0,
        "Deadline for a whole request, from its head to the end of its response, queue time "
        "included: past it, 504 with Connection: close if the response has not started, else the "
        "connection is aborted. The app's thread runs on (Python cannot stop it); its later output "
        "is discarded and its close() still runs (0: off).",
        metavar="SECONDS",
    )
    spare_threads: Optional[int] = _opt(
        None,
        "With --request-timeout: a request still in the app at half its deadline is lent a spare "
        "thread, so the requests queued behind it run in time; at most this many at a time, each "
        "given back when its request's app returns. The app may then run on up to --threads plus "
        "this many threads at once (default: as many as --threads; 0: none).",
        metavar="N",
    )
    deadline_header: Optional[str] = _opt(
        None,
        "Take a request's deadline from this header (seconds, e.g. X-Request-Deadline: 2.5), from "
        "peers in --forwarded-allow-ips only: a proxy passing on what is left of its own budget. "
        "It can only shorten --request-timeout, and sets a deadline when that is off.",
        metavar="NAME",
    )
    interrupt_on_timeout: bool = _opt(
        False,
        "At --request-timeout, also raise asyncwsgi.RequestTimeout in the app's thread, so it stops "
        "at its next Python call or loop iteration (a blocking call only when it returns).",
    )
    slow_request_log: float = _opt(
        0.0,
        "Log, once per request, the Python stack of a request's thread when it has been in the app "
        "this long, with its method, path, client and age; nothing is stopped (0: off).",
        metavar="SECONDS",
    )
    queue_timeout: float = _opt(
        30.0,
        "Seconds a request may wait for a thread; after that it is answered 503 with Retry-After "
        "without running the app.",
        metavar="SECONDS",
    )
    backlog: int = _opt(2048, "Listen backlog: connections the kernel holds before accept.")
    max_connections: int = _opt(
        10000,
        "Open connections at most; at the limit the server stops accepting and the kernel backlog holds the rest.",
    )
    max_connections_per_ip: int = _opt(
        0, "Open connections at most from one client IP; further ones get 503 and are closed (0: no limit)."
    )
    keep_alive: float = _opt(5.0, "Seconds an idle keep-alive connection is kept open.", metavar="SECONDS")
    max_requests_per_connection: int = _opt(
        1000, "Requests served on one connection before it is closed (0: no limit).", metavar="N"
    )
    header_timeout: float = _opt(
        10.0,
        "Seconds a client has to send a complete request head, counted from its first byte "
        "(from the connection's start for the first request); not extended by each byte.",
        metavar="SECONDS",
    )
    body_timeout: float = _opt(
        30.0,
        "Seconds the server waits for the next request body bytes while it wants them; then the "
        "app's read raises and the connection closes.",
        metavar="SECONDS",
    )
    body_min_rate: float = _opt(
        0.0,
        "Bytes/second a request body must average (after a 5 s grace, not counting time the app "
        "was not reading); slower clients are cut off like --body-timeout (0: off).",
        metavar="BYTES_PER_SECOND",
    )
    write_timeout: float = _opt(
        30.0,
        "Seconds a client may not read while the server has response bytes waiting for it; then "
        "the connection is aborted and the app's next write fails.",
        metavar="SECONDS",
    )
    graceful_timeout: float = _opt(
        30.0, "Seconds to let in-flight requests finish on shutdown before closing them.", metavar="SECONDS"
    )
    loop: LoopName = _opt("auto", "Event loop: auto (uvloop when installed), asyncio or uvloop.")
    max_request_line_bytes: int = _opt(8192, "Longest request line accepted; longer gets 414.", metavar="BYTES")
    max_header_bytes: int = _opt(
        8192, "Longest single header (or trailer) field accepted; longer gets 431.", metavar="BYTES"
    )
    max_header_count: int = _opt(100, "Most header (or trailer) fields accepted; more gets 431.", metavar="N")
    max_head_bytes: int = _opt(65536, "Largest request line plus headers accepted; larger gets 431.", metavar="BYTES")
    max_body_bytes: int = _opt(
        1024**3,
        "Largest request body accepted: a larger Content-Length gets 413 before any body is read; "
        "a chunked body over it makes the app's next read raise (0: no limit).",
        metavar="BYTES",
    )
    request_buffer_bytes: int = _opt(
        1024**2,
        "Request bodies up to this size are read whole by the server before the app runs, so the "
        "app's reads never wait on a slow client; larger ones, and chunked ones past it, go on into "
        "a spool file (--request-spool-bytes); ones that expect 100 Continue stream to the app as "
        "they arrive (0: always stream, and nothing is spooled).",
        metavar="BYTES",
    )
    request_buffer_total_bytes: int = _opt(
        64 * 1024**2,
        "Most request-body bytes held for --request-buffer-bytes across all connections; a request "
        "that would pass it streams to the app instead.",
        metavar="BYTES",
    )
    input_buffer_bytes: int = _opt(
        65536, "Request body bytes buffered ahead of the app before the socket stops being read.", metavar="BYTES"
    )
    output_buffer_bytes: int = _opt(
        65536, "Response bytes buffered toward a slow client before the app's writes block.", metavar="BYTES"
    )
    response_buffer_bytes: int = _opt(
        1024**2,
        "Response bytes the server holds for a slow client before the app's writes block, so a "
        "response up to this size never keeps a thread waiting on its reader; past it, a spool "
        "file (--response-spool-bytes) (0: only --output-buffer-bytes, and nothing is spooled).",
        metavar="BYTES",
    )
    response_buffer_total_bytes: int = _opt(
        64 * 1024**2,
        "Most response bytes held for --response-buffer-bytes across all connections; past it, "
        "the app's writes block at --output-buffer-bytes as they would without it.",
        metavar="BYTES",
    )
    spool_dir: Optional[str] = _opt(
        None,
        "Directory for spool files (each unlinked as it is made: nothing is left behind); the "
        "system's temporary directory by default ($TMPDIR, else /tmp).",
        metavar="DIR",
    )
    request_spool_bytes: int = _opt(
        256 * 1024**2,
        "A request body past --request-buffer-bytes goes on into a spool file, up to this size, "
        "before the app runs; the rest streams to the app (0: no request spooling).",
        metavar="BYTES",
    )
    response_spool_bytes: int = _opt(
        256 * 1024**2,
        "A response its client reads slower than the app writes goes on, past "
        "--response-buffer-bytes, into a spool file of up to this size, so the app's thread is "
        "free once the body is written (0: no response spooling).",
        metavar="BYTES",
    )
    spool_total_bytes: int = _opt(
        1024**3,
        "Most bytes held in spool files at once, across all connections of a process; past it, "
        "a transfer goes on as without spooling (0: no spooling).",
        metavar="BYTES",
    )
    url_scheme: Literal["http", "https"] = _opt(
        "http", "wsgi.url_scheme reported to the app (https when TLS ends at a proxy)."
    )
    certfile: Optional[str] = _opt(
        None, "Serve HTTPS with this PEM certificate (chain); wsgi.url_scheme becomes https.", metavar="PATH"
    )
    keyfile: Optional[str] = _opt(None, "PEM private key, if it is not in --certfile.", metavar="PATH")
    keyfile_password: Optional[str] = _opt(None, "Password of an encrypted --keyfile.", metavar="PASSWORD")
    ca_certs: Optional[str] = _opt(None, "PEM CA certificates to verify client certificates with.", metavar="PATH")
    cert_reqs: Literal["none", "optional", "required"] = _opt(
        "none", "Client certificates: none, optional or required (needs --ca-certs)."
    )
    ciphers: str = _opt("", "OpenSSL cipher list for TLS 1.2 (default: Python's).", metavar="LIST")
    health_path: Optional[str] = _opt(
        None, "Answer GET/HEAD of this path with 200 from the event loop: a liveness probe.", metavar="PATH"
    )
    ready_path: Optional[str] = _opt(
        None,
        "Answer GET/HEAD of this path from the event loop: 200 when ready, 503 while draining or "
        "saturated: a readiness probe.",
        metavar="PATH",
    )
    stats_path: Optional[str] = _opt(
        None,
        "Answer GET/HEAD of this path from the event loop with server statistics: JSON, or "
        "Prometheus text for Accept: text/plain or ?format=prometheus.",
        metavar="PATH",
    )
    proxy_headers: bool = _opt(
        False,
        "Believe Forwarded / X-Forwarded-For, -Proto, -Host, -Port and -Prefix from peers in "
        "--forwarded-allow-ips (client address, scheme, host, SCRIPT_NAME); remove them from others.",
        no_help="Pass proxy headers to the app untouched.",
    )
    forwarded_allow_ips: str = _opt(
        "127.0.0.1,::1",
        "Comma-separated IPs and networks (CIDR) of trusted proxies; 'unix' for Unix-socket peers, '*' for any peer.",
        metavar="LIST",
    )
    proxy_protocol: bool = _opt(
        False,
        "Connections from peers in --forwarded-allow-ips start with a PROXY protocol v1 or v2 "
        "header (HAProxy send-proxy, AWS NLB), whose client address becomes REMOTE_ADDR; "
        "without a valid one they get 400. Other peers are plain HTTP.",
        no_help="Every connection is plain HTTP.",
    )
    mount: Tuple[str, ...] = _opt(
        (),
        "Serve an ASGI 3 app on the event loop for every request under a path prefix: "
        "PREFIX=module:attribute; repeat for several (the longest matching prefix wins; --factory "
        "applies to a target that is not an ASGI app yet). Everything else goes to the WSGI app. "
        "The embed API takes mounts={prefix: app} instead.",
        metavar="PREFIX=APP",
        repeat=True,
    )
    static: Tuple[str, ...] = _opt(
        (),
        "Serve the files of a directory from the event loop for every request under a path prefix: "
        "PREFIX=DIR; repeat for several (the longest matching prefix wins, before --mount and the "
        "WSGI app). GET and HEAD, with ETag, Last-Modified, conditional and range requests, and "
        "precompressed FILE.br / FILE.gz copies; sent by the kernel, taking no thread.",
        metavar="PREFIX=DIR",
        repeat=True,
    )
    static_index: bool = _opt(
        False,
        "Under --static, answer a directory with its index.html (and redirect it to its trailing slash).",
        no_help="A directory under --static is not found (the default).",
    )
    static_follow_symlinks: bool = _opt(
        False,
        "Under --static, serve a symlink whose target is outside the directory.",
        no_help="Refuse symlinks that lead outside the --static directory (the default).",
    )
    static_cache_control: str = _opt(
        "public, max-age=60",
        "Cache-Control of a --static file whose name carries no content hash (one that does, such "
        "as app.3f2a9c1b0d4e.css, gets 'public, max-age=31536000, immutable'); empty: none.",
        metavar="VALUE",
    )
    ws_max_size: int = _opt(
        16 * 1024 * 1024,
        "Largest WebSocket message a mounted app is handed (after decompression); a larger one "
        "closes the connection with 1009.",
        metavar="BYTES",
    )
    ws_ping_interval: float = _opt(
        20.0,
        "Send a WebSocket ping this often to keep the connection alive through proxies and see a "
        "vanished client (0: never).",
        metavar="SECONDS",
    )
    ws_ping_timeout: float = _opt(
        20.0,
        "Close a WebSocket (1011) whose client has not answered a ping within this (0: wait forever).",
        metavar="SECONDS",
    )
    ws_per_message_deflate: bool = _opt(
        True,
        "Accept permessage-deflate (RFC 7692) when a WebSocket client offers it.",
        no_help="Never compress WebSocket messages.",
    )
    ws_deflate_context_takeover: bool = _opt(
        False,
        "Keep each WebSocket's compression state from one message to the next: better ratios on "
        "small, similar messages, at about 100 KiB more per socket that has exchanged messages.",
        no_help="Start each WebSocket message's compression afresh (the default).",
    )
    root_path: str = _opt(
        "",
        "SCRIPT_NAME for an app mounted under a path prefix; a request path under it has the "
        "prefix moved from PATH_INFO to SCRIPT_NAME.",
        metavar="PATH",
    )
    server_header: bool = _opt(True, "Send a 'Server: asyncwsgi' header.", no_help="Do not send a 'Server' header.")
    access_log: bool = _opt(
        True,
        "Log one line per request to the asyncwsgi.access logger.",
        no_help="Do not log a line per request.",
    )
    access_log_format: str = _opt(
        "combined",
        "Access log line: 'combined', 'json' (one JSON object per line), or a gunicorn-style "
        "format of %%(atom)s; see docs/running.md for the atoms.",
        metavar="FORMAT",
    )
    user: Optional[str] = _opt(
        None, "Switch to this user (name or uid) after binding, before loading the app (start as root).", metavar="USER"
    )
    group: Optional[str] = _opt(
        None, "Switch to this group (name or gid) after binding; default: the user's group.", metavar="GROUP"
    )
    pid_file: Optional[str] = _opt(None, "Write the server's process id to this file while it runs.", metavar="PATH")
    log_level: LogLevel = _opt("info", "Level of the command's error log (asyncwsgi.error).")
    access_logfile: Optional[str] = _opt(
        None,
        "Append access lines to this file ('-': stdout); reopened on SIGUSR1 for log rotation. Default: stderr.",
        metavar="PATH",
    )
    error_logfile: Optional[str] = _opt(
        None,
        "Append the error log to this file ('-': stderr, the default); reopened on SIGUSR1.",
        metavar="PATH",
    )
    error_log_format: ErrorLogFormat = _opt(
        "text", "The error log's lines: 'text', or 'json' (one object per line, a traceback inside its record)."
    )
    log_config: Optional[str] = _opt(
        None,
        "Configure logging from this file instead: a logging.config dictionary in JSON (.json) or "
        "TOML (.toml), or an INI file for logging.config.fileConfig. The loggers are asyncwsgi.error "
        "and asyncwsgi.access.",
        metavar="FILE",
    )

    def __post_init__(self) -> None:
        _check_type(self)
        if not 0 <= self.port <= 65535:
            _fail("port", f"must be between 0 and 65535, got {self.port}")
        if self.uds is not None and self.fd is not None:
            raise ConfigError("--uds and --fd are mutually exclusive")
        if self.uds == "":
            _fail("uds", "must not be empty")
        if self.bind and (self.uds is not None or self.fd is not None):
            raise ConfigError("--bind replaces --uds and --fd: give every listener with --bind")
        for spec in self.bind:
            if not isinstance(spec, str):
                _fail("bind", f"must be strings, got {spec!r}")
            try:
                parse_bind(spec)
            except ValueError as exc:
                _fail("bind", f"{spec!r}: {exc}")
        if self.uds_mode is not None:
            try:
                mode = int(self.uds_mode, 8)
            except ValueError:
                mode = -1
            if not 0 <= mode <= 0o777:
                _fail("uds_mode", f"must be octal permissions such as 660, got {self.uds_mode!r}")
        for name in ("reload_dir", "reload_include", "reload_exclude"):
            for item in getattr(self, name):
                if not isinstance(item, str) or not item:
                    _fail(name, f"must be non-empty strings, got {item!r}")
        if self.fd is not None and self.fd < 0:
            _fail("fd", f"must be >= 0, got {self.fd}")
        _at_least(self, "threads", 1)
        _at_least(self, "workers", 1)
        _at_least(self, "max_requests", 0)
        _at_least(self, "max_requests_jitter", 0)
        if self.max_requests_jitter and not self.max_requests:
            _fail("max_requests_jitter", "needs --max-requests: it adds to that limit")
        _at_least(self, "queue_size", 0)
        if self.deadline_header is not None and not _FIELD_NAME.fullmatch(self.deadline_header):
            _fail("deadline_header", f"must be a header name, got {self.deadline_header!r}")
        if self.spare_threads is not None:
            _at_least(self, "spare_threads", 0)
            if not self.deadlines:
                _fail(
                    "spare_threads",
                    "needs --request-timeout (or --deadline-header): spares are lent at half of a request's deadline",
                )
        if self.interrupt_on_timeout and not self.deadlines:
            _fail(
                "interrupt_on_timeout",
                "needs --request-timeout (or --deadline-header): there is no deadline to interrupt at",
            )
        if self.interrupt_on_timeout and sys.version_info >= _INTERRUPTS_ESCAPE_FROM:
            _fail(
                "interrupt_on_timeout",
                "is refused on Python 3.13 and later: there an exception raised in another thread can "
                "skip the try, finally and with blocks around a loop (CPython gh-139622, about half the "
                "time here), leaving the app's locks held",
            )
        if self.interrupt_on_timeout and sys.implementation.name != "cpython":
            _fail(
                "interrupt_on_timeout",
                f"needs CPython's PyThreadState_SetAsyncExc; this is {sys.implementation.name}",
            )
        _at_least(self, "backlog", 1)
        _at_least(self, "max_head_bytes", 1024)
        _at_least(self, "max_request_line_bytes", 64)
        _at_least(self, "max_header_bytes", 64)
        _at_least(self, "max_header_count", 1)
        _at_least(self, "max_body_bytes", 0)
        _at_least(self, "max_connections", 1)
        _at_least(self, "max_connections_per_ip", 0)
        _at_least(self, "max_requests_per_connection", 0)
        _at_least(self, "request_buffer_bytes", 0)
        _at_least(self, "request_buffer_total_bytes", 0)
        _at_least(self, "response_buffer_bytes", 0)
        _at_least(self, "response_buffer_total_bytes", 0)
        _at_least(self, "input_buffer_bytes", 1024)
        _at_least(self, "request_spool_bytes", 0)
        _at_least(self, "response_spool_bytes", 0)
        _at_least(self, "spool_total_bytes", 0)
        _at_least(self, "ws_max_size", 1)
        _at_least(self, "output_buffer_bytes", 1024)
        for name in (
            "keep_alive",
            "graceful_timeout",
            "queue_timeout",
            "request_timeout",
            "slow_request_log",
            "header_timeout",
            "body_timeout",
            "body_min_rate",
            "write_timeout",
            "worker_timeout",
            "ws_ping_interval",
            "ws_ping_timeout",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                _fail(name, f"must be a finite number >= 0, got {value}")
        if self.certfile is None:
            for name in ("keyfile", "keyfile_password", "ca_certs"):
                if getattr(self, name) is not None:
                    _fail(name, "needs --certfile")
        if self.cert_reqs != "none" and self.ca_certs is None:
            _fail("cert_reqs", f"{self.cert_reqs} needs --ca-certs to verify client certificates with")
        probes = [p for p in (self.health_path, self.ready_path, self.stats_path) if p is not None]
        for name in ("health_path", "ready_path", "stats_path"):
            value = getattr(self, name)
            if value is not None and (not value.startswith("/") or not value.isascii() or " " in value):
                _fail(name, f"must be an ASCII path starting with '/', got {value!r}")
        if len(set(probes)) != len(probes):
            raise ConfigError("--health-path, --ready-path and --stats-path must differ")
        try:
            check_format(self.access_log_format)
        except ValueError as exc:
            _fail("access_log_format", str(exc))
        statics = [parse_static_spec(spec)[0] for spec in self.static]  # ConfigError names the bad one
        if len(set(statics)) != len(statics):
            _fail("static", f"gives a prefix twice: {', '.join(sorted(p for p in statics if statics.count(p) > 1))}")
        if not self.static_cache_control.isascii() or _BAD_VALUE.search(self.static_cache_control):
            _fail("static_cache_control", f"must be a header value, got {self.static_cache_control!r}")
        if not self.static:
            for name in ("static_index", "static_follow_symlinks", "static_cache_control"):
                if getattr(self, name) != _DEFAULTS[name]:
                    _fail(name, "needs --static: no static directory is served")
        self._check_spooling()
        self._check_needs()
        prefixes = [parse_spec(spec)[0] for spec in self.mount]  # ConfigError names the bad one
        if len(set(prefixes)) != len(prefixes):
            _fail("mount", f"mounts a prefix twice: {', '.join(sorted(p for p in prefixes if prefixes.count(p) > 1))}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            _fail("root_path", f"must start with '/' and not end with '/', got {self.root_path!r}")
        if self.proxy_protocol and self.certfile is not None:
            raise ConfigError(
                "--proxy-protocol cannot be combined with --certfile: the PROXY header comes before the "
                "TLS handshake; end TLS at the balancer, or have it pass TLS through without the header"
            )
        try:
            TrustedProxies(self.forwarded_allow_ips)
        except ValueError as exc:
            _fail("forwarded_allow_ips", f"has an invalid entry: {exc}")
        for name, choices in _FIELD_CHOICES.items():
            if getattr(self, name) not in choices:
                _fail(name, f"must be one of {', '.join(choices)}; got {getattr(self, name)!r}")

    def _check_needs(self) -> None:
        """An option that only takes effect beside another is refused without it, rather than
        ignored: each line here is a setting someone could give and believe in."""
        if not self.reload:
            for name in ("reload_dir", "reload_include", "reload_exclude"):
                if getattr(self, name) != _DEFAULTS[name]:
                    _fail(name, "needs --reload: nothing is watched without it")
        if self.uds_mode is not None and self.uds is None and not any(b.startswith("unix:") for b in self.bind):
            _fail("uds_mode", "needs a Unix socket this server creates (--uds PATH or --bind unix:PATH)")
        if not self.access_log:
            for name in ("access_log_format", "access_logfile"):
                if getattr(self, name) != _DEFAULTS[name]:
                    _fail(name, "is given with --no-access-log: no access line is written")
        if self.log_config is not None:
            for name in ("access_logfile", "error_logfile", "error_log_format", "log_level"):
                if getattr(self, name) != _DEFAULTS[name]:
                    _fail(name, "cannot be combined with --log-config: set it in that file")
        for name in ("access_logfile", "error_logfile", "log_config"):
            if getattr(self, name) == "":
                _fail(name, "must be a path, or '-'" if name != "log_config" else "must be a path")
        if not self.reuse_port and not self.supervised:
            raise ConfigError("--no-reuse-port only applies to the sockets the supervisor binds for --workers")

    def _check_spooling(self) -> None:
        """A spool option that cannot take effect is refused: spooling extends a buffer in
        memory, so a buffer of 0 (or no disk at all) leaves it nothing to do."""
        for side in ("request", "response"):
            name = f"{side}_spool_bytes"
            if getattr(self, name) == _DEFAULTS[name]:
                continue
            if not self.spool_total_bytes:
                _fail(name, "needs --spool-total-bytes above 0")
            if not getattr(self, f"{side}_buffer_bytes"):
                _fail(name, f"needs --{side}-buffer-bytes above 0: a spool goes on where that buffer ends")
        if self.spool_dir is not None and not self.spools:
            _fail("spool_dir", "is set, but nothing is spooled (--spool-total-bytes or both spool caps are 0)")

    @property
    def supervised(self) -> bool:
        """Whether the command runs its workers under the supervisor: for more than one, for
        --reload, and for one worker when an option only the supervisor honours is given
        (--max-requests, or --worker-timeout other than its default)."""
        return (
            self.workers > 1
            or self.reload
            or bool(self.max_requests)
            or self.worker_timeout != _DEFAULTS["worker_timeout"]
        )

    @property
    def spools(self) -> bool:
        """Whether anything may go to a spool file: requests, responses or both."""
        return bool(self.spool_total_bytes) and bool(
            (self.request_buffer_bytes and self.request_spool_bytes)
            or (self.response_buffer_bytes and self.response_spool_bytes)
        )

    @property
    def deadlines(self) -> bool:
        """Whether requests can have deadlines: --request-timeout, or --deadline-header."""
        return bool(self.request_timeout) or self.deadline_header is not None

    @property
    def spares(self) -> int:
        """Spare threads the pool may lend (--spare-threads; as many as --threads by default)."""
        if not self.deadlines:
            return 0
        return self.threads if self.spare_threads is None else self.spare_threads

    def command_options_set(self) -> List[str]:
        """Options only the ``asyncwsgi`` command can act on (processes, users, the loop, reloads)
        that are set to anything but their default, as flag names."""
        defaults = self._command_only_defaults()
        return [flag_name(name) for name, default in defaults.items() if getattr(self, name) != default]

    def check_websocket_options(self, mounted: bool) -> None:
        """WebSockets exist only for mounted ASGI apps: without one, a ``ws_*`` option would
        change nothing, so it is refused (the command checks ``--mount``, start_server its
        ``mounts``)."""
        if mounted:
            return
        names = [f.name for f in dataclasses.fields(self) if f.name.startswith("ws_")]
        given = [flag_name(name) for name in names if getattr(self, name) != _DEFAULTS[name]]
        if given:
            raise ConfigError(f"{', '.join(given)}: no WebSocket is served without a mounted app (--mount)")

    def without_command_options(self) -> Config:
        """This config with the command-only options at their defaults: what the command passes
        to ``start_server`` once it has acted on them itself."""
        return dataclasses.replace(self, **self._command_only_defaults())

    def _command_only_defaults(self) -> Dict[str, Any]:
        return {f.name: f.default for f in dataclasses.fields(self) if f.name in COMMAND_ONLY}

    @classmethod
    def from_options(cls, base: Optional[Config] = None, **options: Any) -> Config:
        """Build a Config from keyword options, naming any unknown one in the error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        if base is None:
            return cls(**options)
        return dataclasses.replace(base, **options)


# Options that only the command can honour: they start processes, switch users, write a pid
# file, pick the event loop or restart on edits. start_server serves on the running loop in the
# calling process, so it refuses them rather than ignore them (see server.start_server).
COMMAND_ONLY = frozenset(
    {
        "workers",
        "reuse_port",
        "worker_timeout",
        "max_requests",
        "max_requests_jitter",
        "reload",
        "reload_dir",
        "reload_include",
        "reload_exclude",
        "user",
        "group",
        "pid_file",
        "loop",
        # An embedding program owns its process's logging: the loggers are asyncwsgi.error and
        # asyncwsgi.access, to be given handlers as it likes.
        "log_level",
        "access_logfile",
        "error_logfile",
        "error_log_format",
        "log_config",
        "mount",  # names apps to import: start_server takes mounts={prefix: app}
    }
)


def flag_name(field_name: str) -> str:
    """The CLI flag for a Config field, used in every error message."""
    return "--" + field_name.replace("_", "-")


def _fail(name: str, message: str) -> None:
    raise ConfigError(f"{flag_name(name)} {message}")


def _at_least(config: Config, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if value < minimum:
        _fail(name, f"must be >= {minimum}, got {value}")


def _runtime_types(annotation: Any) -> Tuple[Tuple[type, ...], Optional[Tuple[str, ...]]]:
    """The types a field's value may have at run time, and its choices if it is a Literal.

    A float field takes an int too (``--keep-alive 5``); a bool is never taken for a number.
    """
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return (str,), tuple(typing.get_args(annotation))
    if origin is Union:
        types: Tuple[type, ...] = ()
        for arg in typing.get_args(annotation):
            types += _runtime_types(arg)[0]
        return types, None
    if origin is tuple:
        return (tuple,), None
    if annotation is float:
        return (int, float), None
    return (annotation,), None


# Read from the annotations (strings under ``from __future__ import annotations``, resolved here),
# so a field's type and choices are written once, on the field.
_FIELD_TYPES: Dict[str, Tuple[type, ...]] = {}
_FIELD_CHOICES: Dict[str, Tuple[str, ...]] = {}
for _name, _hint in typing.get_type_hints(Config).items():
    _FIELD_TYPES[_name], _choices = _runtime_types(_hint)
    if _choices is not None:
        _FIELD_CHOICES[_name] = _choices


def field_choices(field_name: str) -> Optional[Tuple[str, ...]]:
    """The allowed values of a Literal-typed field (None for the rest)."""
    return _FIELD_CHOICES.get(field_name)


def number_kind(field_name: str) -> Optional[type]:
    """float or int for numeric fields (how the CLI parses them), None for the rest."""
    types = _FIELD_TYPES[field_name]
    if float in types:
        return float
    if int in types:
        return int
    return None


def _check_type(config: Config) -> None:
    for name, types in _FIELD_TYPES.items():
        value = getattr(config, name)
        bool_for_number = isinstance(value, bool) and bool not in types
        if bool_for_number or not isinstance(value, types):
            expected = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            _fail(name, f"must be {expected}, got {value!r}")


_DEFAULTS: Dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Config)}
