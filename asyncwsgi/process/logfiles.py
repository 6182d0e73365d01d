"""Where the command's logs go: stderr, files reopened on SIGUSR1, JSON lines, or --log-config. [main]

The library only logs to the ``asyncwsgi.error`` and ``asyncwsgi.access`` loggers (``log.py``);
this module is the command's half, run once per process (the supervisor and every worker
configure their own handlers from the same settings).

Files are opened for appending and written with one ``os.write`` per record or per batch of
access lines (``accesslog.BatchedStreamHandler``): with ``O_APPEND`` each write lands whole at
the end of the file, so several workers can share one file without splitting lines, which a
buffered file object would (it writes in 8 KiB pieces).

Rotation (logrotate's ``postrotate``, or by hand): move the file away, then send SIGUSR1 to the
server (the supervisor passes it on to every worker). Each process writes what it holds to the
old file, then opens the path again: a line is in one file or the other, never lost or split.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from ..accesslog import BatchedStreamHandler
from ..config import Config
from ..errors import ConfigError
from ..log import error_log

_TEXT_FORMAT = "%(asctime)s [%(levelname)s] %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class LogFile:
    """A log stream on a file descriptor: whole writes, and ``reopen`` for rotation."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = self._open()
        self._lock = threading.Lock()  # reopen swaps the descriptor while threads may write

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def write(self, text: str) -> int:
        data = text.encode("utf-8", "backslashreplace")
        with self._lock:
            view = memoryview(data)
            while view:  # a regular file takes it whole; a pipe or a full disk may not
                view = view[os.write(self.fd, view) :]
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered here: each write is already the kernel's."""

    def reopen_on_sigusr1(self) -> None:
        """SIGUSR1 calls ``reopen`` through a plain signal handler: while no event loop handles
        it (starting, stopping), when its default action would end the process."""
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.reopen())

    def reopen(self) -> None:
        """Open the path again (a new file if it was moved away), then close the old one."""
        fd = self._open()
        with self._lock:
            old, self.fd = self.fd, fd
        os.close(old)

    def close(self) -> None:
        os.close(self.fd)


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for platforms that parse logs (and keep a traceback in one record)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class LogSetup:
    """The handlers this process installed, and the files to reopen on SIGUSR1."""

    def __init__(self) -> None:
        self.files: List[LogFile] = []
        self.handlers: List[logging.Handler] = []  # ours, flushed before the files are reopened

    def stream(self, path: Optional[str], dash: Any) -> Any:
        """``dash`` (stdout or stderr) for None or ``-``, else a LogFile this setup owns."""
        if path is None or path == "-":
            return dash
        log_file = LogFile(path)
        self.files.append(log_file)
        return log_file

    def reopen_on_sigusr1(self) -> None:
        """SIGUSR1 calls ``reopen`` through a plain signal handler: while no event loop handles
        it (starting, stopping), when its default action would end the process."""
        signal.signal(signal.SIGUSR1, lambda signum, frame: self.reopen())

    def reopen(self) -> None:
        """SIGUSR1: pending access lines go to the old files, then every file is opened again."""
        for handler in self.handlers:
            handler.flush()
        for log_file in self.files:
            try:
                log_file.reopen()
            except OSError as exc:  # the directory is gone, or no longer ours: keep the old file
                error_log.error("cannot reopen %s: %s; still writing to the old file", log_file.path, exc)
        if self.files:
            error_log.info("reopened %d log file(s) (SIGUSR1)", len(self.files))


def configure(config: Config) -> LogSetup:
    """Install this process's log handlers; OSError when a log file cannot be opened,
    ConfigError when --log-config cannot be read or applied."""
    setup = LogSetup()
    error = logging.getLogger("asyncwsgi.error")
    access = logging.getLogger("asyncwsgi.access")
    if config.log_config is not None:
        _apply_log_config(config.log_config)
        if not config.access_log:
            access.disabled = True  # --no-access-log still holds whatever the file says
        return setup
    handler = logging.StreamHandler(setup.stream(config.error_logfile, sys.stderr))
    if config.error_log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, _DATE_FORMAT))
    error.addHandler(handler)
    error.setLevel(config.log_level.upper())
    error.propagate = False
    # Lines from the loop are written in batches (accesslog.py says what that saves).
    # Unset, both logs share stderr; "-" sends access lines to stdout, as gunicorn's does.
    access_stream = sys.stderr if config.access_logfile is None else setup.stream(config.access_logfile, sys.stdout)
    access_handler = BatchedStreamHandler(access_stream)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(access_handler)
    access.setLevel(logging.INFO if config.access_log else logging.CRITICAL + 1)
    access.propagate = False
    setup.handlers = [access_handler, handler]
    return setup


def _apply_log_config(path: str) -> None:
    """A ``logging.config`` dictionary in JSON or TOML, or an INI file for ``fileConfig``, as
    gunicorn's ``--log-config`` and ``--log-config-json`` take."""
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif path.endswith(".toml"):
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ConfigError("--log-config: a TOML file needs Python 3.11 or later; use JSON or INI") from None
            with open(path, "rb") as file:
                logging.config.dictConfig(tomllib.load(file))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except Exception as exc:  # json, toml, KeyError/ValueError from logging.config, OSError
        raise ConfigError(f"--log-config {path}: {exc}") from None
