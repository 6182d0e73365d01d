"""``--reload``: notice changed source files, so the supervisor can restart its workers.
[main: and its watcher thread]

For development only; nothing watches files unless ``--reload`` is given. Workers are fresh
interpreters, so a restart loads the new code completely. The listening sockets belong to the
supervisor and stay open across the restart: a request sent meanwhile waits in the kernel's
backlog instead of being refused.

Two ways to watch, one interface:

* ``watchfiles`` (the ``asyncwsgi[reload]`` extra): the OS's change notifications (inotify), so
  nothing is scanned while nothing changes;
* polling, when watchfiles is not installed: the tree's modification times, twice a second.

Either runs on one thread of its own. It hands changes to the supervisor's thread in exactly one
place, ``ChangeWatcher._report``: a set under a lock, plus a byte on a pipe the supervisor
selects on. The supervisor calls only ``start``, ``fileno``, ``take`` and ``close``.
"""

from __future__ import annotations

import fnmatch
import os
import threading
from typing import Dict, Iterable, List, Literal, Optional, Sequence, Set, Tuple

from ..errors import ConfigError
from ..log import error_log

Backend = Literal["auto", "watchfiles", "polling"]

# Never worth a restart, whatever --reload-include says: version control, caches, virtualenvs.
BUILTIN_EXCLUDE: Tuple[str, ...] = (
    ".*",
    "__pycache__",
    "*.py[cod]",
    "*~",
    "*.swp",
    "node_modules",
    "site-packages",
    "venv",
)
POLL_SECONDS = 0.5
_SETTLE_SECONDS = 0.1  # polling: changes still arriving this soon after are part of the same save


class PathFilter:
    """Which paths under the watched roots count: the file name matches an include pattern and no
    part of the path below its root (directory or file name) matches an exclude pattern.

    Parts above the root never count, so a project under ``~/.local/src`` is still watched.
    """

    def __init__(self, roots: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> None:
        self.roots = [os.path.abspath(root) for root in roots]
        self.include = tuple(include)
        self.exclude = BUILTIN_EXCLUDE + tuple(exclude)

    def excluded_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.exclude)

    def __call__(self, path: str) -> bool:
        path = os.path.abspath(path)
        for root in self.roots:
            if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
                parts = os.path.relpath(path, root).split(os.sep)
                if any(self.excluded_name(part) for part in parts):
                    return False
                return any(fnmatch.fnmatchcase(parts[-1], pattern) for pattern in self.include)
        return False


class ChangeWatcher:
    """Watches ``roots`` on its own thread; ``fileno()`` turns readable when files changed."""

    def __init__(
        self,
        roots: Sequence[str],
        include: Sequence[str],
        exclude: Sequence[str] = (),
        backend: Backend = "auto",
    ) -> None:
        for root in roots:
            if not os.path.isdir(root):
                raise ConfigError(f"--reload-dir {root!r} is not a directory")
        self.filter = PathFilter(roots, include, exclude)
        self.backend = _choose(backend)
        self._changes: Set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        os.set_blocking(self._write_end, False)
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()

    # --- the supervisor's side [main thread] -------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start watching; returns once changes from now on will be seen."""
        run = self._watch_with_watchfiles if self.backend == "watchfiles" else self._poll
        self._thread = threading.Thread(target=run, name="asyncwsgi-reload", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        error_log.info(
            "--reload: watching %s for %s (%s); for development only",
            ", ".join(self.filter.roots),
            ", ".join(self.filter.include),
            self.backend,
        )

    def fileno(self) -> int:
        return self._read_end

    def take(self) -> List[str]:
        """The files changed since the last call, sorted (empty if none)."""
        try:
            while os.read(self._read_end, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            changed, self._changes = self._changes, set()
        return sorted(changed)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        os.close(self._read_end)
        os.close(self._write_end)

    # --- the watcher thread -------------------------------------------------------------------------

    def _report(self, paths: Iterable[str]) -> None:
        """The one hand-off to the supervisor's thread."""
        with self._lock:
            before = len(self._changes)
            self._changes.update(paths)
            grew = len(self._changes) > before
        if grew:
            try:
                os.write(self._write_end, b"!")
            except (BlockingIOError, OSError):
                pass  # a wake-up is already pending, or we are closing

    def _watch_with_watchfiles(self) -> None:
        try:
            self._watchfiles_loop()
        except Exception as exc:  # e.g. the OS's limit on inotify watches: still reload, by polling
            if self._stop.is_set():
                return
            error_log.warning("--reload: watchfiles failed (%s); polling instead", exc)
            self.backend = "polling"
            self._poll()

    def _watchfiles_loop(self) -> None:
        import watchfiles

        def accept(change: object, path: str) -> bool:
            return self.filter(path)

        # watchfiles sets up its watches before the first check of stop_event; yield_on_timeout
        # gives us that moment to say we are ready.
        for changes in watchfiles.watch(
            *self.filter.roots,
            watch_filter=accept,
            stop_event=self._stop,
            debounce=400,
            step=50,
            rust_timeout=200,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            self._ready.set()
            if changes:
                self._report(path for _, path in changes)

    def _poll(self) -> None:
        before = self._scan()
        self._ready.set()
        while not self._stop.wait(POLL_SECONDS):
            now = self._scan()
            changed = _differences(before, now)
            # An editor's save (or a git checkout) is several writes: report them as one change.
            while changed and not self._stop.wait(_SETTLE_SECONDS):
                later = self._scan()
                more = _differences(now, later)
                if not more:
                    break
                changed |= more
                now = later
            if changed:
                self._report(changed)
            before = now

    def _scan(self) -> Dict[str, Tuple[int, int]]:
        """Every watched file's (mtime in ns, size)."""
        found: Dict[str, Tuple[int, int]] = {}
        for root in self.filter.roots:
            for directory, subdirs, files in os.walk(root):
                subdirs[:] = [d for d in subdirs if not self.filter.excluded_name(d)]
                for name in files:
                    path = os.path.join(directory, name)
                    if not self.filter(path):
                        continue
                    try:
                        stat = os.stat(path)
                    except OSError:
                        continue  # removed while we looked
                    found[path] = (stat.st_mtime_ns, stat.st_size)
        return found


def _differences(before: Dict[str, Tuple[int, int]], after: Dict[str, Tuple[int, int]]) -> Set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def _choose(backend: Backend) -> str:
    if backend == "polling":
        return "polling"
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        if backend == "watchfiles":
            raise ConfigError("--reload with watchfiles needs it installed: pip install 'asyncwsgi[reload]'") from None
        return "polling"
    return "watchfiles"
