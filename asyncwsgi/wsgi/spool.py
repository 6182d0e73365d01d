"""Temporary files that hold a transfer while the other side is slow, within byte caps. [both]

A response the client does not read as fast as the app writes it, past the bytes held in memory
(``--response-buffer-bytes``), goes on into a spool file written by the app's thread, so the
thread is free once the app has produced its body; the loop then sends the file with
``sendfile``. A request body past the bytes read whole in memory (``--request-buffer-bytes``) is
written to a spool file by the loop before the app runs, and ``wsgi.input`` reads it back. That
is how waitress (``inbuf_overflow``, ``outbuf_overflow``) and nginx (``client_body_temp``,
``proxy_temp``) keep slow clients off their workers.

Every spool file is unlinked from the start (``O_TMPFILE`` where the file system has it, else
created and removed at once): nothing is left behind by a crash, and its space is the kernel's
to free when its last descriptor closes. ``SpoolDisk`` is the server's share of the disk:
``--spool-total-bytes`` across all spool files, reserved before each write, so the total never
passes it; each file has its own cap as well (``--request-spool-bytes``,
``--response-spool-bytes``). Both the loop and the pool's threads reserve and release, under one
lock held for a field update.

A write the disk refuses (it is full, or fails) is counted and logged, and the file takes no
more: the transfer goes on as it would without a spool (the request body streams to the app;
the response waits for its client), so a full disk costs the threads, never a request.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from typing import Optional

from ..log import error_log

# Disk errors are logged at most this often (a full disk fails every write).
_ERROR_LOG_SECONDS = 10.0


class SpoolDisk:
    """The spool directory and the bytes every spool file holds, counted against the cap."""

    __slots__ = (
        "_lock",
        "_logged_at",
        "_unlogged",
        "bytes",
        "bytes_total",
        "capacity",
        "directory",
        "errors",
        "files",
        "files_total",
        "full",
    )

    def __init__(self, directory: Optional[str], capacity: int) -> None:
        self.directory = directory or tempfile.gettempdir()
        self.capacity = capacity
        self._lock = threading.Lock()
        self.bytes = 0  # held in spool files now
        self.files = 0  # spool files open now
        self.bytes_total = 0  # ever written to spool files
        self.files_total = 0  # ever made
        self.full = 0  # writes refused because --spool-total-bytes was reached
        self.errors = 0  # files the disk could not make, and writes it failed
        self._logged_at = -_ERROR_LOG_SECONDS
        self._unlogged = 0

    def new_file(self, cap: int, first: int = 1) -> Optional[SpoolFile]:
        """A new, empty spool file that may hold up to ``cap`` bytes; None when the disk's cap
        leaves no room for the ``first`` bytes to go into it, or the file cannot be made
        (counted and logged)."""
        if first > cap:
            return None
        if self.bytes + first > self.capacity:
            with self._lock:
                self.full += 1
            return None
        try:
            fd = _unlinked_file(self.directory)
        except OSError as exc:
            self.failed(f"cannot make a spool file in {self.directory}", exc)
            return None
        with self._lock:
            self.files += 1
            self.files_total += 1
        return SpoolFile(self, fd, cap)

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.bytes + size > self.capacity:
                self.full += 1
                return False
            self.bytes += size
            self.bytes_total += size
            return True

    def release(self, size: int, files: int = 1) -> None:
        """A spool file is gone (``files``; 0 for a part of one) with the ``size`` bytes it held."""
        with self._lock:
            self.bytes -= size
            self.files -= files

    def failed(self, what: str, exc: OSError) -> None:
        """Count a disk error; log it, and how many went unlogged, at most every 10 s."""
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            if now - self._logged_at < _ERROR_LOG_SECONDS:
                self._unlogged += 1
                return
            self._logged_at = now
            unlogged, self._unlogged = self._unlogged, 0
        more = f" ({unlogged} more since the last report)" if unlogged else ""
        error_log.error("%s: %s; going on without a spool file%s", what, exc, more)


class SpoolFile:
    """One spool file: written front to back by one side, then read or sent by the other,
    which closes it.

    ``read`` and ``close`` hold a lock of the file's own: a request body's file is read by the
    app's thread and closed by the loop when the request is over.
    """

    __slots__ = ("_disk", "_lock", "cap", "fd", "size")

    def __init__(self, disk: SpoolDisk, fd: int, cap: int) -> None:
        self._disk = disk
        self._lock = threading.Lock()
        self.fd = fd  # -1 once closed
        self.cap = cap
        self.size = 0

    def append(self, data: bytes) -> bool:
        """Write ``data`` at the end; False (and nothing of it written) when the file's cap or
        the disk's is reached, or the disk fails."""
        size = len(data)
        if self.size + size > self.cap or not self._disk.reserve(size):
            return False
        # Counted before it is written, so whatever happens in between (an exception raised in
        # the app's thread by --interrupt-on-timeout drops the file), close() gives it all back.
        start = self.size
        self.size += size
        view = memoryview(data)
        written = 0
        try:
            while written < size:
                written += os.pwrite(self.fd, view[written:], start + written)
        except OSError as exc:
            self.size = start
            self._disk.release(size, files=0)
            if written:
                try:
                    os.ftruncate(self.fd, start)  # what it holds ends where the last whole write did
                except OSError:
                    pass
            self._disk.failed("spool file write failed", exc)
            return False
        return True

    def read(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer only at its end); b"" once closed."""
        with self._lock:
            if self.fd < 0:
                return b""
            return os.pread(self.fd, size, offset)

    def close(self) -> None:
        """Close the file and give its bytes back to the disk's cap (once; later calls do
        nothing). A file dropped without it is closed when it is freed."""
        with self._lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
            self._disk.release(self.size)

    def __del__(self) -> None:
        if self.fd >= 0:
            self.close()


def _unlinked_file(directory: str) -> int:
    """A new file in ``directory`` that no name refers to, open for reading and writing."""
    flags = getattr(os, "O_TMPFILE", 0)
    if flags:
        try:
            return os.open(directory, flags | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise  # (those three: this file system has no O_TMPFILE)
    fd, path = tempfile.mkstemp(prefix="asyncwsgi-spool-", dir=directory)
    os.unlink(path)
    return fd


def check_directory(directory: Optional[str]) -> Optional[str]:
    """Why spool files cannot be made in ``directory`` (the system's temporary directory if
    None), or None if they can: one is made and closed."""
    where = directory or tempfile.gettempdir()
    if not os.path.isdir(where):
        return f"{where} is not a directory"
    try:
        os.close(_unlinked_file(where))
    except OSError as exc:
        return f"cannot make files in {where}: {exc.strerror or exc}"
    return None
