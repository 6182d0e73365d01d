"""``--workers N``: one supervisor process, N worker processes sharing its listening sockets. [main]

One process of a GIL-bound server uses one core; this is how asyncwsgi uses more. The supervisor
binds every listener and starts each worker as a fresh interpreter (no fork of a process
with threads) that serves the inherited sockets as ``fd://`` listeners: its own SO_REUSEPORT
socket per TCP address, and the shared ones (``worker_sockets.py`` says which, and why). Each
worker runs the ordinary single-process server with the same settings,
passed as a settings file, and sends a heartbeat from its event loop once a second.

The supervisor:

* restarts a worker that exits, at once if it had run a while, else with a back-off doubling
  from 0.1 s to 10 s, so an app that crashes on import does not spin;
* kills (SIGKILL) and replaces a worker whose heartbeat stops for ``--worker-timeout``: its
  event loop is stuck, and that is logged with the reason;
* SIGTERM / SIGINT: passes SIGTERM on, so every worker drains within ``--graceful-timeout``; a
  second signal passes it on again (workers then close at once) and exits 1;
* SIGHUP: starts a new set of workers and stops the old ones once every new one is serving (if
  the new code cannot start, the old workers keep serving while it is retried with back-off);
* SIGTTIN / SIGTTOU: one worker more / one fewer;
* SIGUSR1: reopens its log files and passes the signal on, so every worker reopens its own
  (``logfiles.py``).

With ``--reload`` (development) it also restarts every worker when a watched file changes
(``reloader.py``). A worker whose app fails to import serves that error as a 500 page until then,
and one that fails before serving at all is not retried until the next change.

``--max-requests`` (with ``--max-requests-jitter``) is enforced by each worker, and so is the
recycling of a worker whose every thread is stuck past ``--request-timeout``: the worker asks
for a successor on its heartbeat pipe (``REPLACE_ME``), goes on serving, and is stopped (a
drain) once the successor in its slot serves. The slot's listening sockets stay open in the
supervisor throughout, so a connection made meanwhile waits for one of the two; none is refused.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import subprocess
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional

from ..config import Config
from ..log import error_log
from ..server.listener import discard_socket_files
from . import fleet
from .reloader import ChangeWatcher
from .settings import ENV_PREFIX, to_toml
from .worker_sockets import WorkerSockets

HEARTBEAT_ENV = "_ASYNCWSGI_HEARTBEAT_FD"  # not ASYNCWSGI_*: that prefix is for settings
HEARTBEAT_SECONDS = 1.0
REPLACE_ME = b"r"  # on the heartbeat pipe: start my successor, then stop me (heartbeats are b".")
_STABLE_SECONDS = 5.0  # a worker that ran this long is restarted without back-off
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 10.0
_TICK_SECONDS = 0.25


@dataclasses.dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    slot: int  # which of the N places it fills; its listening sockets are the slot's
    heartbeat: int  # read end of its heartbeat pipe
    started: float
    last_beat: float
    ready: bool = False  # has sent a heartbeat: it is serving
    retiring: bool = False  # told to stop (reload, fewer workers): not restarted
    replaced: bool = False  # asked for a successor (REPLACE_ME); stopped once it serves
    reopen_owed: bool = False  # SIGUSR1 came before it served: passed on once it does


class Supervisor:
    """Runs until signalled; returns the process exit code."""

    def __init__(
        self,
        config: Config,
        app_args: List[str],
        watcher: Optional[ChangeWatcher],
        sockets: WorkerSockets,
        on_reopen: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.on_reopen = on_reopen  # SIGUSR1: the supervisor's own log files
        self.sockets = sockets  # bound by the caller, perhaps before dropping privileges; closed by run()
        self.watcher = watcher  # --reload
        self.awaiting_change = False  # --reload: the app failed to start; wait for the next edit
        self.app_args = app_args  # the app and --factory / --app-dir, passed to each worker
        self.target = config.workers
        self.workers: Dict[int, _Worker] = {}
        self.failures = 0  # quick consecutive worker deaths, for the back-off
        self.restart_at = 0.0
        self.stopping = False
        self.forced = False
        self.stop_deadline = 0.0
        self.reload_pending: List[int] = []  # pids of workers to retire once the new set is ready
        self._signals: List[int] = []
        # --stats-path: where the workers publish their stats for one another (fleet.py)
        self.stats_directory: Optional[str] = fleet.create() if config.stats_path else None

    def run(self) -> int:
        worker_config = dataclasses.replace(
            self.config,
            bind=(),  # each worker's --bind fd://N list is on its command line
            uds=None,
            fd=None,
            workers=1,
            reuse_port=True,  # the supervisor's choice, already made: the worker binds nothing
            pid_file=None,
            user=None,
            group=None,
        )
        # Each worker reads its settings from a pipe of its own (/dev/fd/N), not from a file:
        # a supervisor killed with SIGKILL has nothing left behind in /tmp.
        self._settings = to_toml(worker_config).encode()
        wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(wakeup_w, False)
        old_wakeup = signal.set_wakeup_fd(wakeup_w)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            if self.watcher is not None:
                self.watcher.start()
            error_log.info("supervisor %d starting %d workers", os.getpid(), self.target)
            for slot in range(self.target):
                self._spawn(slot)
            while self.workers or not self.stopping:
                self._tick(wakeup_r)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for worker in self.workers.values():
                worker.proc.kill()
                worker.proc.wait()
            if self.watcher is not None:
                self.watcher.close()
            os.close(wakeup_r)
            os.close(wakeup_w)
            self.sockets.close()
            discard_socket_files(self.sockets.socket_files)
            if self.stats_directory is not None:
                fleet.remove(self.stats_directory)
        error_log.info("supervisor stopped")
        return 1 if self.forced else 0

    # --- the loop -----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _tick(self, wakeup: int) -> None:
        pipes = {w.heartbeat: w for w in self.workers.values()}
        watched = [] if self.watcher is None else [self.watcher.fileno()]
        try:
            readable, _, _ = select.select([wakeup, *watched, *pipes], [], [], _TICK_SECONDS)
        except InterruptedError:
            readable = []
        now = time.monotonic()
        for fd in readable:
            if fd == wakeup:
                os.read(wakeup, 512)
                continue
            if self.watcher is not None and fd == self.watcher.fileno():
                self._restart_for(self.watcher.take())
                continue
            worker = pipes[fd]
            try:
                data = os.read(fd, 512)
            except OSError:
                data = b""
            if data:
                worker.last_beat = now
                worker.ready = True
                if worker.reopen_owed:
                    worker.reopen_owed = False
                    self._signal(worker, signal.SIGUSR1)
                if REPLACE_ME in data and not (worker.replaced or worker.retiring or self.stopping):
                    self._replace(worker)
        while self._signals:
            self._handle_signal(self._signals.pop(0))
        self._reap(now)
        self._check_heartbeats(now)
        self._finish_reload()
        self._finish_replacements()
        if self.stopping:
            if now > self.stop_deadline and self.workers:
                error_log.warning("workers still running after --graceful-timeout: killing them")
                for worker in self.workers.values():
                    worker.proc.kill()
            return
        # Old workers of a reload in progress are not counted: the new set replaces them; nor is
        # a worker that asked for a successor.
        live = [
            w for pid, w in self.workers.items() if not (w.retiring or w.replaced) and pid not in self.reload_pending
        ]
        if len(live) < self.target and now >= self.restart_at and not self.awaiting_change:
            taken = {w.slot for w in live}
            self._spawn(min(slot for slot in range(self.target + 1) if slot not in taken))
        elif len(live) > self.target:  # SIGTTOU: the highest slot goes away
            worker = max(live, key=lambda w: w.slot)
            if not any(w.slot == worker.slot and w is not worker for w in self.workers.values() if not w.retiring):
                self.sockets.release(worker.slot)  # first, so that the worker's last accept empties them
            self._retire(worker)

    def _handle_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGUSR1:
            # Log rotation: every process reopens its own files. A worker still starting may not
            # handle the signal yet (its default action ends it): it gets it once it serves.
            self.on_reopen()
            for worker in self.workers.values():
                if worker.ready:
                    self._signal(worker, signal.SIGUSR1)
                else:
                    worker.reopen_owed = True
            return
        if signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                error_log.warning("received %s again: stopping workers now", name)
                self.forced = True
            else:
                error_log.info("received %s: stopping %d workers gracefully", name, len(self.workers))
                self.stopping = True
                self.stop_deadline = time.monotonic() + self.config.graceful_timeout + 5.0
            for worker in self.workers.values():
                self._signal(worker, signal.SIGTERM)
        elif self.stopping:
            return
        elif signum == signal.SIGHUP:
            error_log.info("received SIGHUP: starting %d new workers, then stopping the old ones", self.target)
            self._start_new_set()
        elif signum == signal.SIGTTIN:
            self.target += 1
            error_log.info("received SIGTTIN: %d workers", self.target)
        elif signum == signal.SIGTTOU and self.target > 1:
            self.target -= 1
            error_log.info("received SIGTTOU: %d workers", self.target)

    def _slots_for(self, replaced: Iterable[_Worker]) -> List[int]:
        """Every slot a new set of workers fills: the replaced workers' and 0 .. target-1."""
        return sorted({w.slot for w in replaced} | set(range(self.target)))

    def _start_new_set(self) -> None:
        """SIGHUP: a new worker in every slot now; the old ones stop once all the new ones serve."""
        old = [(pid, w) for pid, w in self.workers.items() if not w.retiring and pid not in self.reload_pending]
        self.reload_pending += [pid for pid, _ in old]
        for slot in self._slots_for(w for _, w in old):
            self._spawn(slot)

    def _finish_reload(self) -> None:
        if not self.reload_pending:
            return
        new = [w for pid, w in self.workers.items() if pid not in self.reload_pending and not w.retiring]
        if len(new) < self.target or not all(w.ready for w in new):
            return
        for pid in self.reload_pending:
            if pid in self.workers:
                self._retire(self.workers[pid])
        self.reload_pending = []

    def _replace(self, worker: _Worker) -> None:
        """The worker asked for a successor. No longer counted, its slot is filled at once (this
        tick, unless a back-off is running); it is stopped once the successor serves."""
        worker.replaced = True
        error_log.info("worker %d asked to be replaced: starting its successor first", worker.proc.pid)

    def _finish_replacements(self) -> None:
        """Stop each replaced worker once a worker of its own slot serves."""
        for worker in list(self.workers.values()):
            if not worker.replaced or worker.retiring:
                continue
            successor = next(
                (
                    w
                    for w in self.workers.values()
                    if w.slot == worker.slot and w.ready and not (w.replaced or w.retiring)
                ),
                None,
            )
            if successor is not None:
                new, old = successor.proc.pid, worker.proc.pid
                error_log.info("worker %d serves in place of worker %d: stopping it", new, old)
                self._retire(worker)

    def _restart_for(self, changed: List[str]) -> None:
        """--reload: replace every worker now (their listeners stay open, so nothing is refused)."""
        if not changed or self.stopping:
            return
        shown = ", ".join(os.path.relpath(path) for path in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        error_log.info("--reload: %s changed; restarting the workers", shown + more)
        slots = self._slots_for(w for w in self.workers.values() if not w.retiring)
        for worker in self.workers.values():
            if not worker.retiring:
                self._retire(worker)
        self.reload_pending = []
        self.awaiting_change = False
        self.failures = 0
        for slot in slots:
            self._spawn(slot)

    def _reap(self, now: float) -> None:
        for pid, worker in list(self.workers.items()):
            code = worker.proc.poll()
            if code is None:
                continue
            del self.workers[pid]
            os.close(worker.heartbeat)
            if self.stats_directory is not None:
                fleet.retire(self.stats_directory, pid, worker.slot)  # its counts stay with its slot
            if self.stopping or worker.retiring or worker.replaced:
                continue  # (a replaced worker's successor is started already)
            ran = now - worker.started
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
            if self.watcher is not None and not worker.ready:
                error_log.error("worker %d %s before serving; waiting for a file to change (--reload)", pid, how)
                self.awaiting_change = True
                continue
            if code == 0 and worker.ready:
                error_log.info("worker %d exited (recycled); starting another", pid)
                self.failures = 0
                continue
            if ran >= _STABLE_SECONDS:
                self.failures = 0
            else:
                self.failures += 1
            delay = 0.0 if not self.failures else min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (self.failures - 1))
            self.restart_at = now + delay
            error_log.error("worker %d %s after %.1fs; restarting in %.1fs", pid, how, ran, delay)

    def _check_heartbeats(self, now: float) -> None:
        timeout = self.config.worker_timeout
        if not timeout:
            return
        for pid, worker in self.workers.items():
            if now - worker.last_beat > timeout and worker.proc.poll() is None:
                state = "serving" if worker.ready else "starting"
                error_log.error(
                    "worker %d (%s) sent no heartbeat for %.1fs (--worker-timeout): its event loop is stuck;"
                    " killing it",
                    pid,
                    state,
                    now - worker.last_beat,
                )
                worker.proc.kill()
                worker.last_beat = now  # once

    # --- workers ------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> None:
        try:
            fds = self.sockets.for_slot(slot)
        except OSError as exc:  # a new slot's SO_REUSEPORT socket could not be bound
            error_log.error("cannot listen for another worker: %s; retrying in %.0fs", exc, _BACKOFF_MAX)
            self.restart_at = time.monotonic() + _BACKOFF_MAX
            return
        read_end, write_end = os.pipe()
        settings_r, settings_w = os.pipe()
        os.write(settings_w, self._settings)  # about 1.6 KB, well inside a pipe's 64 KiB buffer
        os.close(settings_w)
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k != "WEB_CONCURRENCY"}
        env[HEARTBEAT_ENV] = str(write_end)
        if self.stats_directory is not None:
            env[fleet.DIRECTORY_ENV], env[fleet.SLOT_ENV] = self.stats_directory, str(slot)
        binds = [arg for fd in fds for arg in ("--bind", f"fd://{fd}")]
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "asyncwsgi", *self.app_args, "-c", f"/dev/fd/{settings_r}", *binds],
                pass_fds=[*fds, write_end, settings_r],
                env=env,
                # Its own session: a terminal's Ctrl-C reaches the supervisor alone, which then
                # drains the workers, instead of every worker receiving it twice.
                start_new_session=True,
            )
        finally:
            os.close(write_end)
            os.close(settings_r)
        now = time.monotonic()
        self.workers[proc.pid] = _Worker(proc, slot, read_end, now, now)
        self.restart_at = now

    def _retire(self, worker: _Worker) -> None:
        worker.retiring = True
        self._signal(worker, signal.SIGTERM)

    def _signal(self, worker: _Worker, signum: int) -> None:
        try:
            worker.proc.send_signal(signum)
        except ProcessLookupError:
            pass


def heartbeat_fd() -> Optional[int]:
    """The heartbeat pipe, when this process is a supervised worker."""
    value = os.environ.get(HEARTBEAT_ENV)
    return int(value) if value and value.isdigit() else None
