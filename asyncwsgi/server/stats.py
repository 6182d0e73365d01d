"""The server's counters: requests, responses by class, disconnects, timeouts, queue time. [loop]

Touched only on the loop thread, so they need no lock. ``probes`` reports them at the stats path;
``Server.stats`` hands them to an embedding program.
"""

from __future__ import annotations

import math

QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, math.inf)
TIMEOUT_KINDS = ("header", "body", "write", "queue", "idle", "request", "ws_ping")


class Stats:
    """Monotonic counters, touched only on the loop thread."""

    def __init__(self) -> None:
        self.requests = 0
        self.responses = {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
        self.disconnects = 0  # clients that left before their response was complete
        self.timeouts = dict.fromkeys(TIMEOUT_KINDS, 0)
        self.queue_buckets = [0] * len(QUEUE_BUCKETS)
        self.queue_seconds = 0.0
        self.queue_count = 0

    def response(self, status: int) -> None:
        key = f"{status // 100}xx"
        if key in self.responses:
            self.responses[key] += 1

    def queued(self, seconds: float) -> None:
        """A request waited ``seconds`` between being parsed and a thread starting it."""
        self.queue_count += 1
        self.queue_seconds += seconds
        for index, bound in enumerate(QUEUE_BUCKETS):
            if seconds <= bound:
                self.queue_buckets[index] += 1
                break
