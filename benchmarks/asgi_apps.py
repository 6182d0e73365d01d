"""The ASGI side of the mixing benchmarks (benchmarks/mixing.py): one raw ASGI 3 app, no framework.

* any HTTP path ending in ``/sse``: a server-sent event stream, one event a second, until the
  client goes;
* any other HTTP path: ``Hello, world!`` (13 bytes, as benchmarks/apps.py's WSGI hello);
* a WebSocket: accepted; each message is echoed; idle until the client goes (what 10,000 idle
  chat clients are).

asyncwsgi mounts it (``--mount /a=benchmarks.asgi_apps:app`` beside benchmarks.apps:hello); uvicorn
and hypercorn serve it alone. The same bytes either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

HELLO = b"Hello, world!"


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})
    if scope["path"].endswith("/sse"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        gone = asyncio.ensure_future(receive())  # http.disconnect, when the client goes
        tick = 0
        try:
            while not gone.done():
                await send({"type": "http.response.body", "body": b"data: %d\n\n" % tick, "more_body": True})
                tick += 1
                await asyncio.wait([gone], timeout=1.0)
        except OSError:
            pass
        finally:
            gone.cancel()
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO})
