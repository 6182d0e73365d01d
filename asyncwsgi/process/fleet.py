"""One view of a group of workers: whichever worker answers the stats path reports them all. [loop]

Under ``--workers`` with ``--stats-path``, the supervisor makes a directory (``create``) and
tells each worker where it is and which slot it fills. Each worker writes its stats there once a
second and whenever it answers the stats path, as one JSON file replaced atomically
(``FleetStats.publish``); the worker answering a scrape reads the others' files
(``FleetStats.view``). Other workers' figures are thus up to a second old; the answering
worker's own are current.

A slot's counters never go backwards while the group runs, though its workers are replaced
(``--max-requests``, a crash, SIGHUP): when the supervisor reaps a worker it adds the worker's
last file to the slot's carried counts and names the pid as folded (``retire``), the way
prometheus_client's multiprocess mode keeps a dead process's counters. A worker's file is
rewritten each time it is reported on, so what was ever reported is in the file that is folded.
The supervisor writes the carried counts before it removes the file; readers read the live
files first, then the carried counts, and skip live files of folded pids: a worker is counted
exactly once whichever way the two race. The supervisor runs ``retire`` from its own loop
(``[main]``); a worker runs the rest from its event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Tuple

from ..log import error_log
from ..server.server import Server

DIRECTORY_ENV = "_ASYNCWSGI_STATS_DIR"  # not ASYNCWSGI_*: that prefix is for settings
SLOT_ENV = "_ASYNCWSGI_SLOT"
PUBLISH_SECONDS = 1.0
_RETIRED = "retired.json"

# What carries over from a worker that has gone: counts since start. The rest of a snapshot
# (connections, threads, buffers, queue) is a gauge of a live process.
_COUNTERS = ("requests", "responses", "disconnects", "dropped_while_waiting", "timeouts", "queue_seconds")
_SPOOL_COUNTERS = ("bytes_total", "files_total", "full", "errors")


def create() -> str:
    """[main] The supervisor's directory for its workers' stats (removed by ``remove``)."""
    directory = tempfile.mkdtemp(prefix="asyncwsgi-stats-")
    _write_json(os.path.join(directory, _RETIRED), {"folded": [], "carried": {}})
    return directory


def remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def retire(directory: str, pid: int, slot: int) -> None:
    """[main] Carry a reaped worker's last counts in its slot, then drop its file."""
    path = _worker_file(directory, slot, pid)
    retired = _read_json(os.path.join(directory, _RETIRED)) or {"folded": [], "carried": {}}
    last = _read_json(path)
    if last is not None and pid not in retired["folded"]:
        carried = retired["carried"].get(str(slot), {})
        retired["carried"][str(slot)] = add(carried, counters_of(last["stats"]))
        retired["folded"].append(pid)
        _write_json(os.path.join(directory, _RETIRED), retired)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class FleetStats:
    """A worker's side: publish its own stats, and compose the group's around them."""

    def __init__(self, directory: str, slot: int) -> None:
        self.directory = directory
        self.slot = slot
        self.pid = os.getpid()
        self._path = _worker_file(directory, slot, self.pid)

    def publish(self, stats: Dict[str, Any]) -> None:
        try:
            _write_json(self._path, {"slot": self.slot, "pid": self.pid, "stats": _without_stacks(stats)})
        except OSError as exc:  # the supervisor has gone and taken the directory with it
            error_log.debug("cannot publish stats to %s: %s", self.directory, exc)

    def view(self, own: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[int, Dict[str, Any]]]:
        """The group's totals and each slot's stats, with this worker's ``own`` (current) in place
        of its file, which is rewritten first so that it never reports less than was shown."""
        self.publish(own)
        others = []
        for name in sorted(os.listdir(self.directory)):
            if name.startswith("w-") and name.endswith(".json"):
                entry = _read_json(os.path.join(self.directory, name))
                if entry is not None and entry["pid"] != self.pid:
                    others.append(entry)
        # Read after the live files: a worker folded meanwhile is then in both, and counted
        # once (as carried); read before, it could be in neither.
        retired = _read_json(os.path.join(self.directory, _RETIRED)) or {"folded": [], "carried": {}}
        folded = set(retired["folded"])
        live: List[Tuple[int, int, Dict[str, Any]]] = [(self.slot, self.pid, own)]
        live += [(e["slot"], e["pid"], e["stats"]) for e in others if e["pid"] not in folded]
        return compose(live, {int(k): v for k, v in retired["carried"].items()}, len(folded))

    async def keep_publishing(self, server: Server) -> None:
        """Every second, and once more when cancelled (the worker is stopping): its last counts
        are what the supervisor carries."""
        try:
            while True:
                self.publish(server.stats_snapshot())
                await asyncio.sleep(PUBLISH_SECONDS)
        finally:
            self.publish(server.stats_snapshot())


def compose(
    live: List[Tuple[int, int, Dict[str, Any]]], carried: Dict[int, Dict[str, Any]], retired_workers: int
) -> Tuple[Dict[str, Any], Dict[int, Dict[str, Any]]]:
    """Per slot: its live workers' stats added up (two while one replaces another), plus the
    counts carried from the workers it had; and the totals of all slots."""
    slots: Dict[int, Dict[str, Any]] = {}
    for slot, pid, stats in live:
        tagged = dict(stats, in_flight=[dict(row, worker=slot) for row in stats.get("in_flight", ())])
        current = slots.get(slot)
        slots[slot] = dict(tagged, pids=[pid]) if current is None else add(current, dict(tagged, pids=[pid]))
    for slot, counts in carried.items():
        if slot in slots:
            slots[slot] = add(slots[slot], counts)
    total: Dict[str, Any] = {}
    for slot in sorted(slots):
        total = add(total, {k: v for k, v in slots[slot].items() if k != "pids"})
    for slot, counts in carried.items():
        if slot not in slots:  # a slot given up (SIGTTOU): its counts stay in the totals
            total = add(total, counts)
    total["live_workers"] = sum(len(data["pids"]) for data in slots.values())
    total["retired_workers"] = retired_workers
    return total, slots


def counters_of(stats: Dict[str, Any]) -> Dict[str, Any]:
    counts = {key: stats[key] for key in _COUNTERS if key in stats}
    counts["spool"] = {key: stats.get("spool", {}).get(key, 0) for key in _SPOOL_COUNTERS}
    return counts


def add(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    """Two snapshots (or parts of them) as one: numbers added, lists joined, ``ready`` when either
    is, and the oldest wait the longer of the two."""
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, bool):
            out[key] = out[key] or value
        elif isinstance(value, dict):
            out[key] = add(out[key], value)
        elif isinstance(value, list):
            out[key] = [*out[key], *value]
        elif key == "oldest_seconds":
            out[key] = max(out[key], value)
        else:
            out[key] = out[key] + value
    return out


def _without_stacks(stats: Dict[str, Any]) -> Dict[str, Any]:
    """Thread stacks stay with the worker that was asked for them (``?stacks=1``)."""
    rows = stats.get("in_flight", ())
    return dict(stats, in_flight=[{k: v for k, v in row.items() if k != "stack"} for row in rows])


def _worker_file(directory: str, slot: int, pid: int) -> str:
    return os.path.join(directory, f"w-{slot}-{pid}.json")


def _write_json(path: str, data: Any) -> None:
    """Replace ``path`` at once (a reader sees the old file or the new, never half of one)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None
