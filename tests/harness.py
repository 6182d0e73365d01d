"""The in-process harness for protocol tests: a real HTTPProtocol, context, pool and event loop,
with only the socket replaced by a FakeTransport that records what is written. Used by the
property tests (tests/server/test_fuzz.py), the lifetime and timer tests, and fuzz/fuzz_protocol.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Callable, List, Optional, Tuple

from asyncwsgi.config import Config
from asyncwsgi.server.connection.protocol import HTTPProtocol
from asyncwsgi.server.context import ServerContext
from asyncwsgi.wsgi.pool import ThreadPool
from tests.helpers import Reader


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; closes like a socket transport would (lost next tick)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: HTTPProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self.out = bytearray()
        self.closing = False
        self.reading = True
        self.eof_written = False

    def write(self, data: Any) -> None:
        assert not self.eof_written, "write after write_eof"
        if not self.closing:
            self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def echo_app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["REQUEST_METHOD"].encode(), b" ", environ["PATH_INFO"].encode("latin-1"), b" ", body]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True


@contextlib.asynccontextmanager
async def fake_connection(
    app: Any, config: Config, threads: int = 2, queue_size: int = 2
) -> AsyncIterator[Tuple[HTTPProtocol, FakeTransport, ThreadPool]]:
    """A real protocol, context and pool on the running loop, connected to a FakeTransport."""
    loop = asyncio.get_running_loop()
    pool = ThreadPool(threads=threads, queue_size=queue_size)
    pool.start()
    ctx = ServerContext(config, app, loop, pool)
    protocol = HTTPProtocol(ctx, ("127.0.0.1", "5555"))
    ctx.gate.admit("127.0.0.1")
    transport = FakeTransport(loop, protocol)
    protocol.connection_made(transport)
    try:
        yield protocol, transport, pool
    finally:
        protocol.close()
        await asyncio.sleep(0)
        pool.shutdown()
        pool.join(5)


def run(chunks: List[bytes], eof: bool, done: Callable[[bytes], bool]) -> Tuple[bytes, bool, List[str]]:
    """Feed ``chunks`` (then EOF) to a fresh protocol; return output, closed, loop errors."""
    loop = asyncio.new_event_loop()
    errors: List[str] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(str(context.get("exception") or context)))

    async def scenario() -> Tuple[bytes, bool]:
        pool = ThreadPool(threads=2, queue_size=2)
        pool.start()
        ctx = ServerContext(Config(access_log=False, max_head_bytes=4096), echo_app, loop, pool)
        protocol = HTTPProtocol(ctx, ("127.0.0.1", "5555"))
        ctx.gate.admit("127.0.0.1")
        transport = FakeTransport(loop, protocol)
        protocol.connection_made(transport)
        try:
            for chunk in chunks:
                await until(lambda: transport.reading or transport.closing or transport.eof_written)
                if transport.closing or transport.eof_written:
                    break
                protocol.data_received(chunk)
                await asyncio.sleep(0)
            if eof and not transport.closing and not transport.eof_written:
                await until(lambda: transport.reading or transport.closing)
                protocol.eof_received()
            await until(lambda: transport.closing or transport.eof_written or done(bytes(transport.out)))
            await until(lambda: pool.admitted == 0)
            assert pool.admitted == 0, "a worker slot leaked"
            closed = transport.closing or transport.eof_written
            if closed:
                await until(lambda: protocol.lost or transport.eof_written)
            return bytes(transport.out), closed
        finally:
            protocol.close()
            await asyncio.sleep(0)
            pool.shutdown()
            assert pool.join(5) == []
            assert not ctx.connections, "a connection was left in the registry"

    try:
        out, closed = loop.run_until_complete(scenario())
    finally:
        loop.close()
    return out, closed, errors


def parse_all(data: bytes) -> List[Any]:
    """Parse every response in ``data``; fail on anything malformed."""

    class Source:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def recv(self, n: int) -> bytes:
            chunk, self.data = self.data[:n], self.data[n:]
            return chunk

    reader = Reader(Source(data))  # type: ignore[arg-type]
    responses: List[Any] = []
    while True:
        if not reader.buf and not reader._fill():
            return responses
        responses.append(reader.response())


def split(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[last:point])
        last = point
    return [p for p in pieces if p]
