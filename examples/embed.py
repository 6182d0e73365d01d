"""Serve a WSGI app and a plain asyncio TCP service from one event loop.

    python -m examples.embed

The program owns the loop and its signals; asyncwsgi installs nothing global. Ctrl-C stops
both services: the WSGI server finishes its in-flight requests first.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable, Optional

import asyncwsgi
from examples.hello import app


async def handle_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A line-echo service: the 'other asyncio service' sharing the loop."""
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def run(
    web_port: int = 8000,
    echo_port: int = 8001,
    stop: Optional[asyncio.Event] = None,
    started: Optional[Callable[[asyncwsgi.Server, asyncio.Server], Awaitable[None]]] = None,
) -> None:
    stop = stop or asyncio.Event()
    echo = await asyncio.start_server(handle_echo, "127.0.0.1", echo_port)
    web = await asyncwsgi.start_server(app, host="127.0.0.1", port=web_port, threads=4)
    async with echo, web:
        if started is not None:
            await started(web, echo)
        await stop.wait()
    # Leaving the block closed both: web.wait_closed() let in-flight requests finish.


def main() -> None:
    async def with_signals() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(stop=stop)

    asyncio.run(with_signals())


if __name__ == "__main__":
    main()
