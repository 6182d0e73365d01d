"""A plain ASGI WebSocket echo app, for the Autobahn|Testsuite run (scripts/autobahn.py): it
accepts, and sends every message back as it came, text as text and binary as binary."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Dict

Message = Dict[str, Any]


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "websocket":
        return  # (no lifespan, no plain HTTP)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def wsgi_app(environ: Dict[str, Any], start_response: Any) -> Any:
    """The WSGI app the echo is mounted beside."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]
