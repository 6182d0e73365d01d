"""Counters, and the health, readiness and stats answers the event loop gives itself. [loop]

``--health-path``, ``--ready-path`` and ``--stats-path`` (all off by default) are answered on
the loop, never by a thread, so they still answer when every thread is stuck in the app:
that is when an orchestrator most needs to hear about it.

    health  200 while the event loop runs
    ready   200, or 503 while draining (shutting down) or saturated (every thread busy, the
            queue full and requests waiting for a slot)
    stats   connections by state, threads, queue depth, the oldest waiting request, a
            queue-time histogram, requests, responses, disconnects and timeouts by kind; JSON,
            or Prometheus text for a scraper (``Accept: text/plain`` or ``?format=prometheus``)
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .slowlog import thread_stack

if TYPE_CHECKING:
    from .context import ServerContext

QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, math.inf)
TIMEOUT_KINDS = ("header", "body", "write", "queue", "idle", "request", "ws_ping")

HEALTH, READY, STATS = "health", "ready", "stats"


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


def is_ready(ctx: ServerContext) -> bool:
    pool = ctx.pool
    return not ctx.draining and not (pool.admitted >= pool.capacity and pool.waiting)


def snapshot(ctx: ServerContext, stacks: bool = False) -> Dict[str, Any]:
    """Everything the stats endpoint reports, computed now (with stacks: each in-flight
    request's thread stack too)."""
    from .exchange import BUFFERING, DONE, RUNNING, WAITING, Exchange  # here: exchange imports this module

    now = time.monotonic()
    states = {
        "idle": 0,
        "reading_body": 0,
        "waiting_for_thread": 0,
        "in_app": 0,
        "writing_blocked": 0,
        "answered_by_loop": 0,
        "asgi": 0,
    }
    oldest = 0.0
    pool_queued = 0
    in_flight: List[Dict[str, Any]] = []
    thread_names = {thread.ident: thread.name for thread in threading.enumerate()}
    for protocol in ctx.connections:
        exchange = protocol.exchange
        if exchange is None or exchange.state is DONE:
            states["idle"] += 1
            continue
        if exchange.local is not None:
            states["answered_by_loop"] += 1  # a probe like this one
            continue
        if not isinstance(exchange, Exchange):
            states["asgi"] += 1  # a mounted ASGI app's request or WebSocket, on the loop: no thread
            if exchange.scope["type"] != "websocket":
                row = _in_flight(exchange.environ, now, exchange.started, exchange.started, None)
                row["asgi"] = exchange.mount.prefix  # the mount it runs under, on the loop
                if stacks and exchange.task is not None:
                    row["stack"] = _task_stack(exchange.task)
                in_flight.append(row)
            continue
        if exchange.state is BUFFERING:
            states["reading_body"] += 1  # the loop reads its body before the app runs
            continue
        if protocol.write_paused:
            states["writing_blocked"] += 1
        elif exchange.state is WAITING:
            states["waiting_for_thread"] += 1
        else:
            states["in_app"] += 1
        call = exchange.call
        if exchange.state is RUNNING and call.started_at:
            row = _in_flight(exchange.environ, now, exchange.started, call.started_at, thread_names.get(call.thread))
            if stacks:
                row["stack"] = thread_stack(call.thread)
            in_flight.append(row)
        if exchange.state is WAITING or (exchange.state is RUNNING and not call.started_at):
            oldest = max(oldest, now - call.queued_at)
            if exchange.state is RUNNING:
                pool_queued += 1
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


def answer(
    ctx: ServerContext, kind: str, query: bytes, accept: str, peer: Optional[str] = None
) -> Tuple[int, bytes, str, bytes]:
    """(status, reason, content type, body) for one of the loop-answered endpoints.

    ``?stacks=1`` on the stats endpoint adds each in-flight request's thread stack: the app's
    code and data in its frames, so only for a peer (the socket's, not a forwarded one) in
    ``--forwarded-allow-ips``; others get 403.
    """
    if kind == HEALTH:
        return 200, b"OK", "text/plain; charset=utf-8", b"ok\n"
    if kind == READY:
        if is_ready(ctx):
            return 200, b"OK", "text/plain; charset=utf-8", b"ready\n"
        reason = "draining" if ctx.draining else "saturated"
        return 503, b"Service Unavailable", "text/plain; charset=utf-8", f"not ready: {reason}\n".encode()
    stacks = b"stacks=1" in query
    if stacks and not ctx.trusted_peers.trusts(peer):
        return 403, b"Forbidden", "text/plain; charset=utf-8", b"stacks only for --forwarded-allow-ips\n"
    data = snapshot(ctx, stacks)
    if b"format=prometheus" in query or "text/plain" in accept or "openmetrics" in accept:
        return 200, b"OK", "text/plain; version=0.0.4; charset=utf-8", prometheus(data).encode()
    return 200, b"OK", "application/json", json.dumps(data, indent=1).encode() + b"\n"


def prometheus(data: Dict[str, Any]) -> str:
    """The snapshot in the Prometheus text exposition format (version 0.0.4)."""
    lines: List[str] = []

    def metric(name: str, kind: str, helptext: str, samples: List[Tuple[str, Any]]) -> None:
        lines.append(f"# HELP asyncwsgi_{name} {helptext}")
        lines.append(f"# TYPE asyncwsgi_{name} {kind}")
        for labels, value in samples:
            lines.append(f"asyncwsgi_{name}{labels} {_number(value)}")

    connections = data["connections"]
    metric(
        "connections",
        "gauge",
        "Open connections by state.",
        [(f'{{state="{k}"}}', v) for k, v in connections.items() if k != "open"],
    )
    threads = data["threads"]
    metric(
        "threads",
        "gauge",
        "Threads by state.",
        [(f'{{state="{state}"}}', threads[state]) for state in ("busy", "spare", "stuck")],
    )
    metric("threads_total", "gauge", "Threads.", [("", data["threads"]["total"])])
    buffers = data["request_buffers"]
    metric("request_buffer_bytes", "gauge", "Request-body bytes reserved for buffering.", [("", buffers["bytes"])])
    metric("request_buffer_capacity_bytes", "gauge", "--request-buffer-total-bytes.", [("", buffers["capacity"])])
    buffers = data["response_buffers"]
    metric("response_buffer_bytes", "gauge", "Response bytes reserved for slow readers.", [("", buffers["bytes"])])
    metric("response_buffer_capacity_bytes", "gauge", "--response-buffer-total-bytes.", [("", buffers["capacity"])])
    queue = data["queue"]
    metric(
        "queue_depth",
        "gauge",
        "Requests waiting for a thread.",
        [('{where="pool"}', queue["in_pool"]), ('{where="parked"}', queue["parked"])],
    )
    metric("oldest_queued_seconds", "gauge", "Age of the oldest request waiting.", [("", queue["oldest_seconds"])])
    histogram = data["queue_seconds"]
    samples: List[Tuple[str, Any]] = [(f'_bucket{{le="{le}"}}', n) for le, n in histogram["buckets"].items()]
    samples += [("_sum", histogram["sum"]), ("_count", histogram["count"])]
    metric("queue_seconds", "histogram", "Time from request to a thread starting it.", samples)
    metric("requests_total", "counter", "Requests parsed.", [("", data["requests"])])
    metric(
        "responses_total",
        "counter",
        "Responses by status class.",
        [(f'{{class="{k}"}}', v) for k, v in data["responses"].items()],
    )
    metric("disconnects_total", "counter", "Clients gone before their response ended.", [("", data["disconnects"])])
    metric(
        "dropped_while_waiting_total",
        "counter",
        "Requests dropped unrun: their client reset while they waited for a thread.",
        [("", data["dropped_while_waiting"])],
    )
    metric(
        "timeouts_total",
        "counter",
        "Deadlines that ended a request or connection.",
        [(f'{{kind="{k}"}}', v) for k, v in data["timeouts"].items()],
    )
    metric("ready", "gauge", "1 when ready for traffic.", [("", 1 if data["ready"] else 0)])
    return "\n".join(lines) + "\n"


def local_paths(health: Optional[str], ready: Optional[str], stats: Optional[str]) -> Dict[bytes, str]:
    paths = {}
    for path, kind in ((health, HEALTH), (ready, READY), (stats, STATS)):
        if path:
            paths[path.encode("latin-1")] = kind
    return paths


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


def _in_flight(
    environ: Dict[str, Any], now: float, started: float, in_app: float, thread: Optional[str]
) -> Dict[str, Any]:
    """One request of the stats' ``in_flight`` list."""
    return {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "client": environ.get("REMOTE_ADDR"),
        "age_seconds": round(now - started, 6),
        "in_app_seconds": round(now - in_app, 6),
        "thread": thread,
    }


def _task_stack(task: asyncio.Task[None]) -> str:
    """Where a mounted app's coroutine is suspended, outermost first, as a thread stack reads.

    (``Task.print_stack`` shows only the task's own coroutine; the awaited chain is walked here.)
    """
    lines = []
    awaitable: Any = task.get_coro()
    for _ in range(100):  # a bound against a cycle; real chains are a few frames deep
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is None:
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}\n')
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return "".join(lines)
