"""A finished request's objects are freed by reference counting, not left to the cyclic GC.

Reference cycles per request (a request cycle and its pipes' callbacks into it) made every request
garbage for the cyclic collector: about 15 objects each, a collection every ~50 requests, and
its pauses in the tail latency. These tests fail if such a cycle comes back.
"""

from __future__ import annotations

import asyncio
import gc
from typing import List

import pytest

from asyncwsgi.config import Config
from asyncwsgi.server.connection.protocol import HTTPProtocol
from asyncwsgi.server.context import ServerContext
from asyncwsgi.server.cycle.wsgi import WSGICycle
from asyncwsgi.wsgi.pool import ThreadPool
from tests.apps import basic
from tests.harness import FakeTransport, fake_connection, until
from tests.helpers import WAIT


def _live_cycles() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is WSGICycle)


@pytest.mark.parametrize(
    "app,request_bytes",
    [
        (basic.hello, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
        (basic.echo, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"),
        (basic.stream, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"),
    ],
    ids=["one-hop", "body-and-continue", "streamed"],
)
def test_finished_requests_leave_no_cyclic_garbage(app, request_bytes):
    loop = asyncio.new_event_loop()

    async def scenario() -> int:
        async with fake_connection(app, Config(access_log=False)) as (protocol, _, pool):
            for _ in range(30):
                protocol.data_received(request_bytes)
                assert await until(lambda: pool.admitted == 0 and protocol.cycle is None, WAIT)
            return _live_cycles()

    gc.collect()
    gc.disable()
    try:
        live = loop.run_until_complete(scenario())
    finally:
        gc.enable()
        loop.close()
    assert live == 0, f"{live} finished cycles are waiting for the cyclic garbage collector"


@pytest.mark.parametrize(
    "options", [{}, {"request_timeout": 30.0}, {"queue_timeout": 0.0}], ids=["waited", "deadline", "no-queue-timeout"]
)
def test_requests_that_waited_for_a_thread_leave_no_cyclic_garbage(options):
    """Many connections at once, one thread and a short queue: requests park (no slot) or queue
    behind the busy thread, each with its wait (and its deadline) an object of its own. Those
    referred back to the request: 5,000 idle keep-alive connections that had each waited once
    held 0.9 KiB more each (RSS), until the collector came round."""
    loop = asyncio.new_event_loop()

    async def scenario() -> int:
        pool = ThreadPool(threads=1, queue_size=1)
        pool.start()
        ctx = ServerContext(Config(access_log=False, **options), basic.hello, loop, pool)
        protocols: List[HTTPProtocol] = []
        for index in range(20):
            protocol = HTTPProtocol(ctx, ("127.0.0.1", str(6000 + index)))
            ctx.gate.admit("127.0.0.1")
            protocol.connection_made(FakeTransport(loop, protocol))
            protocols.append(protocol)
        for protocol in protocols:
            protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await until(lambda: pool.admitted == 0 and all(p.cycle is None for p in protocols), WAIT)
        live = _live_cycles()
        for protocol in protocols:
            protocol.close()
        await asyncio.sleep(0)
        pool.shutdown()
        pool.join(5)
        return live

    gc.collect()
    gc.disable()
    try:
        live = loop.run_until_complete(scenario())
    finally:
        gc.enable()
        loop.close()
    assert live == 0, f"{live} finished cycles are waiting for the cyclic garbage collector"
