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
from asyncwsgi.server.exchange import Exchange
from tests.apps import basic
from tests.harness import fake_connection, until
from tests.helpers import WAIT


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
        async with fake_connection(app, Config(access_log=False)) as (protocol, _, pool):
            for _ in range(30):
                protocol.data_received(request_bytes)
                assert await until(lambda: pool.admitted == 0 and protocol.exchange is None, WAIT)
            return _live_exchanges()

    gc.collect()
    gc.disable()
    try:
        live = loop.run_until_complete(scenario())
    finally:
        gc.enable()
        loop.close()
    assert live == 0, f"{live} finished exchanges are waiting for the cyclic garbage collector"
