"""In-process micro-benchmark of the per-request hot path: no network, no wrk, no peers.

    python benchmarks/hotpath.py                 # both loops, both modes
    python benchmarks/hotpath.py --loop uvloop --requests 50000 --profile

A real HTTPProtocol, ServerContext and event loop; only the socket is a fake transport that
keeps what is written. Each request is fed as one read, and the next is fed when the previous
response is complete, like one keep-alive client. Two modes:

* ``inline``: the WSGI job runs synchronously on the loop thread. This is the CPU cost of one
  request through our code and h11 (parse, checks, environ, start_response, serialise, write),
  with no thread switching.
* ``threads``: the real 8-thread ThreadPool, so the figure adds the cross-thread hand-off.

Prints microseconds per request (best of ``--repeat`` runs). Use it to see a regression before
running the network benchmarks, and ``--profile`` to see where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import sys
import time
from typing import Any, Callable, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asyncwsgi.accesslog import BatchedStreamHandler
from asyncwsgi.config import Config
from asyncwsgi.server.connection.protocol import HTTPProtocol
from asyncwsgi.server.context import ServerContext
from asyncwsgi.wsgi.pool import ThreadPool

# What wrk sends.
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
RESPONSE_END = b"Hello, world!"


def hello(environ: Any, start_response: Any) -> List[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, world!"]


class InlinePool(ThreadPool):
    """Runs each job at once on the calling (loop) thread: measures CPU cost without threads."""

    def try_submit(self, job: Callable[[], None]) -> bool:
        self._admitted += 1
        job()
        return True

    def start(self) -> None:
        pass


class Transport(asyncio.Transport):
    def __init__(self, on_write: Callable[[bytes], None]) -> None:
        super().__init__()
        self._on_write = on_write

    def write(self, data: Any) -> None:
        self._on_write(bytes(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        raise AssertionError("the benchmark connection was closed")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        pass


def run_once(loop_name: str, mode: str, requests: int, profile: bool, access_log: bool = False) -> float:
    """Microseconds per request for one run."""
    if loop_name == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()

    async def main() -> float:
        running = asyncio.get_running_loop()
        config = Config(access_log=access_log, max_requests_per_connection=0, keep_alive=600)
        pool = InlinePool(1, 0) if mode == "inline" else ThreadPool(8, 32)
        pool.start()
        ctx = ServerContext(config, hello, running, pool)
        protocol = HTTPProtocol(ctx, ("127.0.0.1", "40000"))
        state = {"left": requests}
        finished = running.create_future()

        def on_write(data: bytes) -> None:
            if data.endswith(RESPONSE_END):
                state["left"] -= 1
                if state["left"] == 0:
                    finished.set_result(None)
                else:
                    running.call_soon(protocol.data_received, REQUEST)

        protocol.connection_made(Transport(on_write))
        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        protocol.data_received(REQUEST)
        await finished
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        pool.shutdown()
        return elapsed / requests * 1e6

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], action="append")
    parser.add_argument("--mode", choices=["inline", "threads"], action="append")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one run and print the top functions")
    parser.add_argument(
        "--access-log", action="store_true", help="with the command's access log (batched), written to /dev/null"
    )
    args = parser.parse_args()
    if args.access_log:
        logger = logging.getLogger("asyncwsgi.access")
        sink = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run, like the command's stderr)
        logger.addHandler(BatchedStreamHandler(sink))  # as the command sets it up
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for loop_name in args.loop or ["asyncio", "uvloop"]:
        for mode in args.mode or ["inline", "threads"]:
            if args.profile:
                run_once(loop_name, mode, args.requests, True, args.access_log)
                continue
            best = min(run_once(loop_name, mode, args.requests, False, args.access_log) for _ in range(args.repeat))
            print(f"{loop_name:8s} {mode:8s} {best:7.1f} us/request  ({1e6 / best:,.0f} req/s on one core)")


if __name__ == "__main__":
    main()
