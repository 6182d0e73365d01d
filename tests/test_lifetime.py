"""A finished request's objects are freed by reference counting, not left to the cyclic GC.

Reference cycles per request (an exchange and its pipes' callbacks into it) made every request
garbage for the cyclic collector: about 15 objects each, a collection every ~50 requests, and
its pauses in the tail latency. These tests fail if such a cycle comes back.
"""

from __future__ import annotations

import asyncio
import gc

import pytest

from asyncwsgi.config import Config
from asyncwsgi.context import ServerContext
from asyncwsgi.exchange import Exchange
from asyncwsgi.executor import WorkerPool
from asyncwsgi.protocol import HTTPProtocol
from tests.apps import basic
from tests.helpers import WAIT
from tests.test_fuzz import FakeTransport, _until


def _live_exchanges() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is Exchange)


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
        pool = WorkerPool(threads=2, queue_size=2)
        pool.start()
        ctx = ServerContext(Config(access_log=False), app, loop, pool)
        protocol = HTTPProtocol(ctx, ("127.0.0.1", "5555"))
        ctx.gate.admit("127.0.0.1")
        transport = FakeTransport(loop, protocol)
        protocol.connection_made(transport)
        try:
            for count in range(1, 31):
                protocol.data_received(request_bytes)
                assert await _until(lambda n=count: pool.admitted == 0 and protocol.exchange is None, WAIT)
            return _live_exchanges()
        finally:
            protocol.close()
            await asyncio.sleep(0)
            pool.shutdown()
            pool.join(WAIT)

    gc.collect()
    gc.disable()
    try:
        live = loop.run_until_complete(scenario())
    finally:
        gc.enable()
        loop.close()
    assert live == 0, f"{live} finished exchanges are waiting for the cyclic garbage collector"
