"""The connection's phase (asyncwsgi/server/phases.py ``Phase``) through its life, on a real
protocol, context and pool with a fake socket: each transition the Phase docstring lists."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asyncwsgi.config import Config
from asyncwsgi.server.connection.phases import Phase
from tests.harness import fake_connection, until

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def _phase(protocol) -> Phase:
    """The phase now (a call, so the type checker does not carry an earlier comparison over)."""
    return protocol.phase


def hello(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"hi"]


def ignores_body(environ, start_response):
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


@pytest.mark.asyncio
async def test_head_request_idle_head_again_then_closed():
    async with fake_connection(hello, Config(access_log=False)) as (protocol, transport, _):
        assert protocol.phase is Phase.HEAD  # a new connection owes us a head
        protocol.data_received(GET)
        assert _phase(protocol) is Phase.REQUEST
        assert await until(lambda: protocol.phase is Phase.IDLE)
        assert transport.out.endswith(b"hi")
        protocol.data_received(GET[:5])  # the first byte of the next request
        assert protocol.phase is Phase.HEAD
        protocol.data_received(GET[5:])
        assert await until(lambda: transport.out.count(b"hi") == 2 and protocol.phase is Phase.IDLE)
        protocol.eof_received()
        assert await until(lambda: protocol.phase is Phase.CLOSED)
        assert protocol.lost


@pytest.mark.asyncio
async def test_request_stays_in_request_while_the_app_runs():
    release = threading.Event()

    def slow(environ, start_response):
        release.wait(5)
        return hello(environ, start_response)

    async with fake_connection(slow, Config(access_log=False)) as (protocol, _transport, _):
        protocol.data_received(GET)
        await asyncio.sleep(0.05)
        assert protocol.phase is Phase.REQUEST and protocol.cycle is not None
        release.set()
        assert await until(lambda: protocol.phase is Phase.IDLE and protocol.cycle is None)


@pytest.mark.asyncio
async def test_unread_body_is_drained_then_the_next_request_is_served():
    config = Config(access_log=False, request_buffer_bytes=0)  # streamed, so left unread
    async with fake_connection(ignores_body, config) as (protocol, transport, _):
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345")
        assert await until(lambda: protocol.phase is Phase.DRAIN)
        assert b"404" in transport.out
        protocol.data_received(b"67890")  # the rest of the body: read and discarded
        assert protocol.phase is Phase.IDLE
        protocol.data_received(GET)
        assert await until(lambda: transport.out.count(b"404 Not Found") == 2)


@pytest.mark.asyncio
async def test_refused_head_lingers_and_input_is_discarded():
    async with fake_connection(hello, Config(access_log=False)) as (protocol, transport, _):
        protocol.data_received(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
        assert protocol.phase is Phase.LINGER
        assert transport.out.startswith(b"HTTP/1.1 400 ") and transport.eof_written
        written = len(transport.out)
        protocol.data_received(GET)  # ignored: the connection is over
        assert len(transport.out) == written
        protocol.eof_received()
        assert await until(lambda: protocol.phase is Phase.CLOSED)


@pytest.mark.asyncio
async def test_idle_deadline_closes_and_head_deadline_answers_408():
    config = Config(access_log=False, keep_alive=0.05, header_timeout=0.1)
    async with fake_connection(hello, config) as (protocol, transport, _):
        protocol.data_received(GET)
        assert await until(lambda: protocol.phase is Phase.IDLE)
        assert await until(lambda: protocol.phase is Phase.CLOSED, timeout=2)
        assert b"408" not in transport.out  # an idle connection closes quietly
        assert protocol.ctx.stats.timeouts["idle"] == 1
    async with fake_connection(hello, config) as (protocol, transport, _):
        protocol.data_received(GET[:10])
        assert await until(lambda: protocol.phase is Phase.LINGER, timeout=2)
        assert transport.out.startswith(b"HTTP/1.1 408 ")
        assert protocol.ctx.stats.timeouts["header"] == 1
