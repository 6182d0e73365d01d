"""A small Starlette app to mount beside the Flask and Django ones: routes, JSON, a streamed
response, server-sent events, a WebSocket endpoint and lifespan state."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Dict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[Dict[str, Any]]:
    yield {"started": "yes"}


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"asgi hello {request.path_params['name']} {request.url.path}")


async def echo_json(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"received": data, "started": request.state.started})


async def stream(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"part%d;" % i

    return StreamingResponse(parts(), media_type="text/plain")


async def events(request: Request) -> StreamingResponse:
    async def ticks() -> AsyncIterator[str]:
        for i in range(3):
            yield f"data: tick {i}\n\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(ticks(), media_type="text/event-stream")


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"echo {text}")


app = Starlette(
    routes=[
        Route("/hello/{name}", hello),
        Route("/json", echo_json, methods=["POST"]),
        Route("/stream", stream),
        Route("/events", events),
        WebSocketRoute("/socket", echo_socket),
    ],
    lifespan=lifespan,
)
