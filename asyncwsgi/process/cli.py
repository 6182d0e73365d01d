"""The ``asyncwsgi`` command. [main]

The only place that exits the process, configures logging and installs signal handlers.
Flags are generated from ``Config``'s fields, so every option exists exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

from .. import __version__
from ..config import Config, field_choices, flag_name, number_kind
from ..errors import AppImportError, ConfigError, StartupFailed
from ..log import access_log, error_log
from ..server.listener import bind_sockets, discard_socket_files
from ..server.server import Server, describe, start_server
from ..server.tls import make_ssl_context
from ..static.mounts import StaticMounts
from ..types import WSGIApp
from ..wsgi.spool import check_directory
from . import logfiles, privileges
from .importer import import_app, import_failure_app, import_mounts
from .loops import resolve_loop
from .reloader import ChangeWatcher
from .settings import env_options, file_options, to_toml
from .supervisor import Supervisor, heartbeat_fd
from .worker import start_supervised
from .worker_sockets import WorkerSockets

_FORCED_EXIT = 1
# File descriptors beyond one per connection: listeners, the loop's own, logs, the app's files.
_SPARE_FDS = 256


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not a usage dump: easy to read in a service log.
        self.exit(2, f"asyncwsgi: error: {message} (see --help)\n")


def _number(kind: type, name: str) -> Any:
    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag_name(name)} expects {kind.__name__}, got {text!r}") from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="asyncwsgi",
        description="Serve a WSGI application over HTTP/1.1 with an asyncio event loop and a thread pool.",
    )
    parser.add_argument(
        "app",
        nargs="?",
        help="The WSGI app as 'module:attribute' (attribute may be dotted), e.g. myproject.wsgi:application.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="TOML file of settings (keys are the flags without --). Without it, [tool.asyncwsgi] in "
        "./pyproject.toml is read if present. Precedence: command line > ASYNCWSGI_* environment > file.",
    )
    parser.add_argument("--print-config", action="store_true", help="Print the effective settings as TOML and exit.")
    parser.add_argument(
        "--factory", action="store_true", help="Treat the app as a factory: call it with no arguments to get the app."
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="Directory put first on sys.path before importing the app (default: current directory).",
    )
    parser.add_argument("--version", action="version", version=f"asyncwsgi {__version__}")
    for f in dataclasses.fields(Config):
        meta = f.metadata
        flag = flag_name(f.name)
        # Only flags actually given land in the namespace (SUPPRESS): the environment and a
        # settings file fill in the rest, then Config's defaults.
        if f.default is True:
            parser.add_argument(
                f"--no-{flag[2:]}", dest=f.name, action="store_false", default=argparse.SUPPRESS, help=meta["no_help"]
            )
            continue
        if f.default is False:
            parser.add_argument(flag, dest=f.name, action="store_true", default=argparse.SUPPRESS, help=meta["help"])
            continue
        if meta.get("repeat"):
            parser.add_argument(
                flag,
                dest=f.name,
                action="append",
                default=argparse.SUPPRESS,
                metavar=meta["metavar"],
                help=meta["help"],
            )
            continue
        kwargs: Dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            # "(default: ...)" only where there is one and the help does not already say it.
            "help": meta["help"]
            + ("" if f.default in (None, "") or "default" in meta["help"] else f" (default: {f.default})"),
        }
        choices = field_choices(f.name)
        if choices is not None:
            kwargs["choices"] = choices
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        kind = number_kind(f.name)
        if kind is not None:
            kwargs["type"] = _number(kind, f.name)
        parser.add_argument(flag, **kwargs)
    return parser


def config_from_args(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None, cwd: str = ".") -> Config:
    """Defaults < settings file < ASYNCWSGI_* environment < command line."""
    environ = os.environ if environ is None else environ
    values, _ = file_options(getattr(args, "config", None), cwd)
    values.update(env_options(environ))
    concurrency = environ.get("WEB_CONCURRENCY", "")
    if "workers" not in values and not hasattr(args, "workers") and concurrency.isdigit():
        values["workers"] = int(concurrency)  # the Heroku / container convention
    for f in dataclasses.fields(Config):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = tuple(value) if f.metadata.get("repeat") else value
    return Config(**values)


def _check_spool_dir(config: Config) -> None:
    if config.spool_dir is not None:
        problem = check_directory(config.spool_dir)
        if problem is not None:
            raise ConfigError(f"--spool-dir {problem}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        if args.print_config:
            sys.stdout.write(to_toml(config))
            return 0
        if args.app is None:
            parser.error("the app is required: asyncwsgi module:attribute")
        loop_name, loop_factory = resolve_loop(config.loop)
        make_ssl_context(config)  # unreadable certificates are a one-line error before importing the app
        StaticMounts(config.static)  # so is a --static directory that is not there
        config.check_websocket_options(mounted=bool(config.mount))  # before any worker starts
        _check_spool_dir(config)  # and a --spool-dir that cannot take files
    except ConfigError as exc:
        return _fail(str(exc), 2)
    try:
        logs = logfiles.configure(config)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot open a log file: {exc}", 1)
    # SIGUSR1 reopens the log files; from here, not only once the loop runs, as its default
    # action would end the process (the supervisor may pass it on to a worker still starting).
    logs.reopen_on_sigusr1()
    _raise_fd_limit(config.max_connections + _SPARE_FDS)
    if config.pid_file is not None:
        try:
            _write_pid_file(config.pid_file)  # before dropping privileges, as run directories need
        except OSError as exc:
            return _fail(f"cannot write --pid-file: {exc}", 1)
    socket_files: List[str] = []  # Unix sockets bound before dropping privileges: ours to remove
    try:
        if config.supervised and heartbeat_fd() is None:
            return _supervise(args, config, logs)  # binds (and drops privileges) itself
        if config.user is not None or config.group is not None:
            # Bind as root, then become --user: the app never runs as root.
            try:
                config, socket_files = _bind_then_drop_privileges(config)
            except ConfigError as exc:
                return _fail(str(exc), 2)
            except OSError as exc:
                return _fail(f"cannot listen: {exc}", 1)
        return _run(args, config, loop_name, loop_factory, logs)
    finally:
        discard_socket_files(socket_files)
        if config.pid_file is not None:
            _remove_pid_file(config.pid_file)


def _run(args: argparse.Namespace, config: Config, loop_name: str, loop_factory: Any, logs: logfiles.LogSetup) -> int:
    try:
        app = import_app(args.app, factory=args.factory, app_dir=args.app_dir)
        mounts = import_mounts(config.mount, factory=args.factory, app_dir=args.app_dir)
    except AppImportError as exc:
        if exc.__cause__ is not None:
            # The app's own code raised: where is worth more than a one-line summary.
            error_log.error("the app raised while being imported:", exc_info=exc.__cause__)
        if not (config.reload and heartbeat_fd() is not None):
            return _fail(str(exc), 1)
        # A --reload worker: show the error to whoever asks, until the next save replaces us.
        error_log.error("%s; answering 500 with the traceback until a file changes (--reload)", exc)
        app = import_failure_app(exc)
        mounts = {}
    loop = loop_factory()
    try:
        asyncio.set_event_loop(loop)
        code: int = loop.run_until_complete(_serve(app, config, loop_name, mounts, logs))
        return code
    except OSError as exc:
        return _fail(f"cannot listen: {exc}", 1)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except StartupFailed as exc:
        return _fail(str(exc), 1)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _supervise(args: argparse.Namespace, config: Config, logs: logfiles.LogSetup) -> int:
    """Bind every worker's sockets, become --user if given, and run the supervisor."""
    app_args = [args.app, "--app-dir", args.app_dir] + (["--factory"] if args.factory else [])
    try:
        watcher = None
        if config.reload:
            roots = config.reload_dir or (args.app_dir,)
            watcher = ChangeWatcher(roots, config.reload_include, config.reload_exclude)
        switch = config.user is not None or config.group is not None
        uid, gid = privileges.resolve(config.user, config.group) if switch else (0, 0)
        sockets = WorkerSockets(config)
        try:
            if switch:
                # Every worker's sockets now, as root: after the switch, ports below 1024 are out
                # of reach (a slot added later by SIGTTIN is bound as the user).
                sockets.prebind(config.workers)
                privileges.drop(uid, gid, config.user, sockets.socket_files)
        except BaseException:
            sockets.close()
            raise
        return Supervisor(config, app_args, watcher, sockets, on_reopen=logs.reopen).run()
    except ConfigError as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot listen: {exc}", 1)


def _bind_then_drop_privileges(config: Config) -> Tuple[Config, List[str]]:
    """Bind as root, become --user/--group, and serve the bound sockets as fd:// listeners.

    Also returns the Unix socket files bound, which the listeners (now fd://) will not remove."""
    uid, gid = privileges.resolve(config.user, config.group)
    sockets, files = bind_sockets(config)
    try:
        privileges.drop(uid, gid, config.user, files)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    binds = tuple(f"fd://{sock.detach()}" for sock in sockets)
    return dataclasses.replace(config, bind=binds, uds=None, fd=None), files


def _write_pid_file(path: str) -> None:
    with open(path, "w") as file:
        file.write(f"{os.getpid()}\n")


def _remove_pid_file(path: str) -> None:
    try:
        with open(path) as file:
            if file.read().strip() == str(os.getpid()):
                os.unlink(path)  # only our own: a successor may already have written its pid
    except OSError:
        pass


async def _serve(app: WSGIApp, config: Config, loop_name: str, mounts: Dict[str, Any], logs: logfiles.LogSetup) -> int:
    # Signal handling comes first: a supervisor or systemd may send SIGTERM the moment it reads
    # "listening on", and before the handler the default action kills the process undrained,
    # leaving the pid file behind (seen in 5 of 40 runs under load).
    signals = _Signals(logs)
    signals.install()
    tasks: List[asyncio.Task[None]] = []
    try:
        # The command has acted on its own options (processes, user, pid file, loop, reload,
        # --max-requests below); the server gets the rest.
        server = await start_server(app, config.without_command_options(), mounts=mounts)
        signals.attach(server)  # a signal that came while starting takes effect now
        for address in describe(server):
            error_log.info(
                "asyncwsgi %s listening on %s (loop: %s, threads: %d)", __version__, address, loop_name, config.threads
            )
        tasks = start_supervised(server, config)  # none unless the supervisor started us
        await server.serve_forever()
    finally:
        signals.remove()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for handler in access_log.handlers:
        handler.flush()  # the last batch of access lines goes before the line that says we stopped
    error_log.info("asyncwsgi stopped")
    return _FORCED_EXIT if signals.count > 1 else 0


class _Signals:
    """SIGINT/SIGTERM on the loop: the first drains the server, a second closes everything now.
    SIGUSR1 reopens the log files, on the loop, between two batches of access lines."""

    def __init__(self, logs: logfiles.LogSetup) -> None:
        self.count = 0
        self.server: Optional[Server] = None
        self._loop = asyncio.get_running_loop()
        self._logs = logs
        self._installed: List[int] = []

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._on_signal, signum)
            self._installed.append(signum)
        self._loop.add_signal_handler(signal.SIGUSR1, self._logs.reopen)
        self._installed.append(signal.SIGUSR1)

    def remove(self) -> None:
        for signum in self._installed:
            self._loop.remove_signal_handler(signum)  # which restores the default action
        self._installed.clear()
        self._logs.reopen_on_sigusr1()  # (remove_signal_handler left the default action)

    def attach(self, server: Server) -> None:
        self.server = server
        if self.count:
            error_log.info("a signal came while starting: shutting down")
            self._apply()

    def _on_signal(self, signum: int) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count == 1:
            error_log.info("received %s: shutting down gracefully (again to force)", name)
        else:
            error_log.warning("received %s again: closing all connections now", name)
        self._apply()

    def _apply(self) -> None:
        server = self.server
        if server is None:
            return  # still starting: attach() applies it
        if self.count == 1:
            server.close()
        else:
            server.abort()


def _raise_fd_limit(wanted: int) -> None:
    """Let the process hold --max-connections sockets: raise the soft open-file limit toward it.

    Only the command does this; an embedding program owns its process limits.
    """
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            error_log.debug("could not raise the open-file limit: %s", exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        error_log.warning(
            "the open-file limit (%d) is below --max-connections plus %d spare; accept() will fail before it",
            soft,
            _SPARE_FDS,
        )


def _fail(message: str, code: int) -> int:
    print(f"asyncwsgi: error: {message}", file=sys.stderr)
    return code
