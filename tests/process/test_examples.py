"""The examples the README and docs show really work."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import httpx
import pytest

from examples import embed


@pytest.mark.asyncio
async def test_embed_example_serves_both_services():
    stop = asyncio.Event()
    results: Dict[str, Any] = {}

    async def started(web, echo):
        web_port = web.sockets[0].getsockname()[1]
        echo_port = echo.sockets[0].getsockname()[1]
        async with httpx.AsyncClient(timeout=10) as client:
            results["web"] = (await client.get(f"http://127.0.0.1:{web_port}/")).text
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_port)
        writer.write(b"ping\n")
        results["echo"] = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        stop.set()

    await asyncio.wait_for(embed.run(0, 0, stop=stop, started=started), 15)
    assert results == {"web": "Hello, world!", "echo": b"ping\n"}
