"""The health, readiness and stats answers the event loop gives itself. [loop]

``--health-path``, ``--ready-path`` and ``--stats-path`` (all off by default) are answered on
the loop (``cycle/probe.py``), never by a thread, so they still answer when every thread is stuck
in the app: that is when an orchestrator most needs to hear about it.

    health  200 while the event loop runs
    ready   200, or 503 while draining (shutting down) or saturated (every thread busy, the
            queue full and requests waiting for a slot)
    stats   connections by state, threads, queue depth, the oldest waiting request, a
            queue-time histogram, requests, responses, disconnects and timeouts by kind; JSON,
            or Prometheus text for a scraper (``Accept: text/plain`` or ``?format=prometheus``)

Each connection's request cycle says what it is doing (``Cycle.report``): this module knows no
kind of cycle.
"""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .context import HEALTH, READY, ServerContext
from .stats import QUEUE_BUCKETS

# What a connection may be doing, as "connections" counts them (each cycle reports its own).
_TEXT = "text/plain; charset=utf-8"
STATES = (
    "idle",
    "reading_body",
    "waiting_for_thread",
    "in_app",
    "writing_blocked",
    "sending_file",
    "answered_by_loop",
    "asgi",
)


def is_ready(ctx: ServerContext) -> bool:
    pool = ctx.pool
    return not ctx.draining and not (pool.admitted >= pool.capacity and pool.waiting)


def snapshot(ctx: ServerContext, stacks: bool = False) -> Dict[str, Any]:
    """Everything the stats endpoint reports, computed now (with stacks: each in-flight
    request's thread stack, or its task's for a mounted app)."""
    now = time.monotonic()
    states = dict.fromkeys(STATES, 0)
    oldest = 0.0
    pool_queued = 0
    in_flight: List[Dict[str, Any]] = []
    for connection in ctx.connections:
        cycle = connection.cycle
        if cycle is None or cycle.done:
            states["idle"] += 1
            continue
        report = cycle.report(now, stacks)
        states[report.state] += 1
        if report.row is not None:
            in_flight.append(report.row)
        if report.queued_at:
            oldest = max(oldest, now - report.queued_at)
            pool_queued += report.in_pool
    pool = ctx.pool
    stats = ctx.stats
    running = pool.running_threads
    busy = max(0, min(running, pool.admitted - pool_queued))
    return {
        "ready": is_ready(ctx),
        "draining": ctx.draining,
        "connections": {"open": len(ctx.connections), **states},
        # total counts the spares lent in place of threads held past half a deadline; stuck, the
        # requests past their deadline whose threads have not come back (--request-timeout).
        "threads": {
            "total": running,
            "busy": busy,
            "idle": running - busy,
            "spare": pool.spares_out,
            "stuck": len(ctx.stuck),
        },
        "in_flight": sorted(in_flight, key=lambda r: -r["age_seconds"]),
        "request_buffers": {"bytes": ctx.request_buffers.used, "capacity": ctx.request_buffers.capacity},
        "response_buffers": {"bytes": ctx.response_buffers.used, "capacity": ctx.response_buffers.capacity},
        "spool": _spool(ctx),
        "queue": {
            "in_pool": pool_queued,
            "parked": pool.waiting,
            "capacity": pool.capacity - pool.threads,
            "oldest_seconds": round(oldest, 6),
        },
        "queue_seconds": {
            "buckets": {
                _le(bound): count for bound, count in zip(QUEUE_BUCKETS, _cumulative(stats.queue_buckets), strict=True)
            },
            "sum": round(stats.queue_seconds, 6),
            "count": stats.queue_count,
        },
        "requests": stats.requests,
        "responses": dict(stats.responses),
        "disconnects": stats.disconnects,
        # Requests dropped, without running the app, because their client reset while they
        # waited for a thread (gonewatch.py).
        "dropped_while_waiting": ctx.gone.dropped,
        "timeouts": dict(stats.timeouts),
    }


def _spool(ctx: ServerContext) -> Dict[str, int]:
    """Spool files (``wsgi.spool``): held now, against --spool-total-bytes, and counts since start.
    ``full``: writes refused at the cap; ``errors``: files the disk could not make or write."""
    disk = ctx.spool
    if disk is None:
        return dict.fromkeys(("bytes", "capacity", "files", "bytes_total", "files_total", "full", "errors"), 0)
    return {
        "bytes": disk.bytes,
        "capacity": disk.capacity,
        "files": disk.files,
        "bytes_total": disk.bytes_total,
        "files_total": disk.files_total,
        "full": disk.full,
        "errors": disk.errors,
    }


def answer(ctx: ServerContext, kind: str, query: bytes, accept: str, peer: Optional[str]) -> Tuple[int, str, bytes]:
    """(status, content type, body) for one of the loop-answered endpoints.

    ``?stacks=1`` on the stats endpoint adds each in-flight request's thread stack: the app's
    code and data in its frames, so only for a peer (the socket's, not a forwarded one) in
    ``--forwarded-allow-ips``; others get 403.
    """
    if kind == HEALTH:
        return 200, _TEXT, b"ok\n"
    if kind == READY:
        if is_ready(ctx):
            return 200, _TEXT, b"ready\n"
        reason = "draining" if ctx.draining else "saturated"
        return 503, _TEXT, f"not ready: {reason}\n".encode()
    stacks = b"stacks=1" in query
    if stacks and not ctx.trusted_peers.trusts(peer):
        return 403, _TEXT, b"stacks only for --forwarded-allow-ips\n"
    data = snapshot(ctx, stacks)
    prometheus_wanted = b"format=prometheus" in query or "text/plain" in accept or "openmetrics" in accept
    if ctx.fleet is not None:
        total, slots = ctx.fleet(data)
        if prometheus_wanted:
            body = prometheus_fleet(slots)
            return 200, "text/plain; version=0.0.4; charset=utf-8", body.encode()
        document = {**total, "workers": [{"worker": slot, **slots[slot]} for slot in sorted(slots)]}
        return 200, "application/json", json.dumps(document, indent=1).encode() + b"\n"
    if prometheus_wanted:
        return 200, "text/plain; version=0.0.4; charset=utf-8", prometheus(data).encode()
    return 200, "application/json", json.dumps(data, indent=1).encode() + b"\n"


def prometheus(data: Dict[str, Any]) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    return _render([("", data)])


def prometheus_fleet(slots: Dict[int, Dict[str, Any]]) -> str:
    """Every worker slot's stats, each sample labelled ``worker="<slot>"``, and how many
    workers serve. A slot's counters carry those of the workers it replaced (process/fleet.py),
    so each series only grows while the group runs."""
    text = _render([(f'worker="{slot}"', slots[slot]) for slot in sorted(slots)])
    live = sum(len(data.get("pids", ())) for data in slots.values())
    return (
        text
        + "# HELP asyncwsgi_workers Worker processes serving.\n# TYPE asyncwsgi_workers gauge\n"
        + f"asyncwsgi_workers {live}\n"
    )


def _render(datasets: List[Tuple[str, Dict[str, Any]]]) -> str:
    """Each family once (its HELP and TYPE), with the samples of every dataset, each given
    that dataset's label (``worker="0"``) beside its own."""
    lines: List[str] = []

    def metric(
        name: str, kind: str, helptext: str, samples_of: Callable[[Dict[str, Any]], List[Tuple[str, Any]]]
    ) -> None:
        lines.append(f"# HELP asyncwsgi_{name} {helptext}")
        lines.append(f"# TYPE asyncwsgi_{name} {kind}")
        for label, data in datasets:
            for labels, value in samples_of(data):
                lines.append(f"asyncwsgi_{name}{_with_label(labels, label)} {_number(value)}")

    metric(
        "connections",
        "gauge",
        "Open connections by state.",
        lambda d: [(f'{{state="{k}"}}', v) for k, v in d["connections"].items() if k != "open"],
    )
    metric(
        "threads",
        "gauge",
        "Threads by state.",
        lambda d: [(f'{{state="{state}"}}', d["threads"][state]) for state in ("busy", "spare", "stuck")],
    )
    metric("threads_total", "gauge", "Threads.", lambda d: [("", d["threads"]["total"])])
    metric(
        "request_buffer_bytes",
        "gauge",
        "Request-body bytes reserved for buffering.",
        lambda d: [("", d["request_buffers"]["bytes"])],
    )
    metric(
        "request_buffer_capacity_bytes",
        "gauge",
        "--request-buffer-total-bytes.",
        lambda d: [("", d["request_buffers"]["capacity"])],
    )
    metric(
        "response_buffer_bytes",
        "gauge",
        "Response bytes reserved for slow readers.",
        lambda d: [("", d["response_buffers"]["bytes"])],
    )
    metric(
        "response_buffer_capacity_bytes",
        "gauge",
        "--response-buffer-total-bytes.",
        lambda d: [("", d["response_buffers"]["capacity"])],
    )
    for name, kind, key, helptext in _SPOOL_FAMILIES:
        metric(name, kind, helptext, functools.partial(_spool_sample, key))
    metric(
        "queue_depth",
        "gauge",
        "Requests waiting for a thread.",
        lambda d: [('{where="pool"}', d["queue"]["in_pool"]), ('{where="parked"}', d["queue"]["parked"])],
    )
    metric(
        "oldest_queued_seconds",
        "gauge",
        "Age of the oldest request waiting.",
        lambda d: [("", d["queue"]["oldest_seconds"])],
    )
    metric("queue_seconds", "histogram", "Time from request to a thread starting it.", _histogram)
    metric("requests_total", "counter", "Requests parsed.", lambda d: [("", d["requests"])])
    metric(
        "responses_total",
        "counter",
        "Responses by status class.",
        lambda d: [(f'{{class="{k}"}}', v) for k, v in d["responses"].items()],
    )
    metric(
        "disconnects_total",
        "counter",
        "Clients gone before their response ended.",
        lambda d: [("", d["disconnects"])],
    )
    metric(
        "dropped_while_waiting_total",
        "counter",
        "Requests dropped unrun: their client reset while they waited for a thread.",
        lambda d: [("", d["dropped_while_waiting"])],
    )
    metric(
        "timeouts_total",
        "counter",
        "Deadlines that ended a request or connection.",
        lambda d: [(f'{{kind="{k}"}}', v) for k, v in d["timeouts"].items()],
    )
    metric("ready", "gauge", "1 when ready for traffic.", lambda d: [("", 1 if d["ready"] else 0)])
    return "\n".join(lines) + "\n"


_SPOOL_FAMILIES = (
    ("spool_bytes", "gauge", "bytes", "Bytes held in spool files."),
    ("spool_capacity_bytes", "gauge", "capacity", "--spool-total-bytes (0: no spooling)."),
    ("spool_files", "gauge", "files", "Spool files open."),
    ("spooled_bytes_total", "counter", "bytes_total", "Bytes written to spool files."),
    ("spool_files_total", "counter", "files_total", "Spool files made."),
    ("spool_full_total", "counter", "full", "Spool writes refused at --spool-total-bytes."),
    ("spool_errors_total", "counter", "errors", "Spool files the disk could not make or write."),
)


def _spool_sample(key: str, data: Dict[str, Any]) -> List[Tuple[str, Any]]:
    return [("", data["spool"][key])]


def _histogram(data: Dict[str, Any]) -> List[Tuple[str, Any]]:
    histogram = data["queue_seconds"]
    samples: List[Tuple[str, Any]] = [(f'_bucket{{le="{le}"}}', n) for le, n in histogram["buckets"].items()]
    return [*samples, ("_sum", histogram["sum"]), ("_count", histogram["count"])]


def _with_label(labels: str, label: str) -> str:
    """``{state="idle"}`` with ``worker="0"`` first in it; a suffix (``_bucket``) kept before it."""
    if not label:
        return labels
    suffix, brace, inner = labels.partition("{")
    if not brace:
        return f"{labels}{{{label}}}"
    return f"{suffix}{{{label},{inner}"


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


def _cumulative(counts: List[int]) -> List[int]:
    total, out = 0, []
    for count in counts:
        total += count
        out.append(total)
    return out


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)
