"""process/fleet.py: the group's stats composed from each worker's file and the counts carried
from workers that have gone."""

from __future__ import annotations

import os
from typing import Any, Dict, List

from asyncwsgi.process import fleet


def stats(requests: int, busy: int = 0, oldest: float = 0.0, ready: bool = True, rows: int = 0) -> Dict[str, Any]:
    """A snapshot shaped as probes.snapshot makes one (the parts the fleet treats differently)."""
    return {
        "ready": ready,
        "threads": {"busy": busy, "total": 8},
        "queue": {"oldest_seconds": oldest},
        "in_flight": [{"path": f"/{i}", "stack": "frames"} for i in range(rows)],
        "requests": requests,
        "responses": {"2xx": requests},
        "timeouts": {"write": 0},
        "spool": {"bytes": 5, "bytes_total": requests, "files_total": 0, "full": 0, "errors": 0},
    }


def test_add_sums_numbers_joins_lists_and_takes_the_longest_wait():
    total = fleet.add(stats(3, busy=1, oldest=0.5, ready=False, rows=1), stats(4, busy=2, oldest=0.2, rows=2))
    assert total["requests"] == 7 and total["responses"] == {"2xx": 7} and total["threads"]["busy"] == 3
    assert total["queue"]["oldest_seconds"] == 0.5 and total["ready"] is True and len(total["in_flight"]) == 3


def test_a_slot_with_two_live_workers_adds_both_and_carries_its_past(tmp_path):
    live = [(0, 10, stats(5)), (0, 11, stats(2)), (1, 12, stats(7, rows=1))]
    total, slots = fleet.compose(live, {0: fleet.counters_of(stats(100)), 2: fleet.counters_of(stats(30))}, 3)
    assert slots[0]["requests"] == 107 and slots[0]["pids"] == [10, 11]
    assert slots[1]["requests"] == 7 and slots[1]["in_flight"][0]["worker"] == 1
    assert 2 not in slots  # a slot given up: no series of its own ...
    assert total["requests"] == 144  # ... but its counts stay in the totals
    assert total["threads"]["total"] == 24  # gauges of live workers only
    assert total["spool"]["bytes"] == 15 and total["spool"]["bytes_total"] == 144
    assert total["live_workers"] == 3 and total["retired_workers"] == 3


def test_a_retired_workers_counts_move_to_its_slot_once(tmp_path):
    directory = fleet.create()
    try:
        first = fleet.FleetStats(directory, 0)
        first.pid = 111
        first._path = os.path.join(directory, "w-0-111.json")
        first.publish(stats(40, rows=1))
        reader = fleet.FleetStats(directory, 1)
        total, slots = reader.view(stats(1))
        assert total["requests"] == 41 and slots[0]["pids"] == [111]
        assert "stack" not in slots[0]["in_flight"][0]  # stacks stay with the worker asked for them
        fleet.retire(directory, 111, 0)
        fleet.retire(directory, 111, 0)  # reaped twice, counted once
        assert not os.path.exists(os.path.join(directory, "w-0-111.json"))
        total, slots = reader.view(stats(1))
        assert total["requests"] == 41 and total["retired_workers"] == 1 and 0 not in slots
    finally:
        fleet.remove(directory)
    assert not os.path.exists(directory)


def test_a_file_folded_while_it_is_read_is_counted_once(tmp_path, monkeypatch):
    """The supervisor folds a worker between a reader's read of the live files and of the
    carried counts: the worker must be counted once, not twice and not never."""
    directory = fleet.create()
    try:
        gone = fleet.FleetStats(directory, 0)
        gone.pid, gone._path = 222, os.path.join(directory, "w-0-222.json")
        gone.publish(stats(50))
        reader = fleet.FleetStats(directory, 1)
        real_read = fleet._read_json
        folds: List[str] = []

        def fold_after_the_first_read(path: str) -> Any:
            found = real_read(path)
            if not folds:  # between the reader's two reads, whichever it makes first
                folds.append(path)
                fleet.retire(directory, 222, 0)
            return found

        monkeypatch.setattr(fleet, "_read_json", fold_after_the_first_read)
        total, _ = reader.view(stats(0))
        assert total["requests"] == 50
    finally:
        fleet.remove(directory)


def test_what_was_reported_is_in_the_file_that_is_folded(tmp_path):
    """The answering worker rewrites its own file before it reports, so a worker killed before
    its next second's publish still carries every count that was shown."""
    directory = fleet.create()
    try:
        worker = fleet.FleetStats(directory, 0)
        worker.publish(stats(10))
        shown, _ = worker.view(stats(25))
        fleet.retire(directory, worker.pid, 0)
        later, _ = fleet.FleetStats(directory, 1).view(stats(0))
        assert shown["requests"] == 25 and later["requests"] == 25
    finally:
        fleet.remove(directory)
