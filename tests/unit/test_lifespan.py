"""Unit tests for the ASGI lifespan protocol (asyncwsgi/asgi/lifespan.py): real coroutines on
the test's loop, no server."""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

from asyncwsgi.asgi.lifespan import Lifespan
from asyncwsgi.errors import StartupFailed


def recording_app(events: List[str], fail_startup: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                if fail_startup:
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                scope["state"]["ready"] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


@pytest.mark.asyncio
async def test_startup_then_shutdown_with_state():
    events: List[str] = []
    lifespan = Lifespan(recording_app(events), "/a")
    await lifespan.startup(5)
    assert lifespan.supported and lifespan.state == {"ready": True}
    await lifespan.shutdown(5)
    assert events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.asyncio
async def test_a_failed_startup_raises_with_the_apps_message():
    lifespan = Lifespan(recording_app([], fail_startup=True), "/a")
    with pytest.raises(StartupFailed, match="/a failed to start: no database"):
        await lifespan.startup(5)
    await lifespan.shutdown(5)  # nothing left running


@pytest.mark.asyncio
async def test_an_app_without_lifespan_is_served_anyway():
    async def http_only(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"

    lifespan = Lifespan(http_only, "/a")
    await lifespan.startup(5)
    assert not lifespan.supported and lifespan.state is None
    await lifespan.shutdown(5)


@pytest.mark.asyncio
async def test_an_app_that_raises_before_answering_startup_is_served_without_lifespan(caplog):
    async def http_only_that_reads_first(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise KeyError("path")

    lifespan = Lifespan(http_only_that_reads_first, "/a")
    await lifespan.startup(5)
    assert not lifespan.supported
    assert "raised KeyError('path') on the lifespan scope" in caplog.text


@pytest.mark.asyncio
async def test_an_app_that_raises_during_shutdown_is_logged(caplog):
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("pool close failed")

    lifespan = Lifespan(app, "/a")
    await lifespan.startup(5)
    await lifespan.shutdown(5)
    assert "shutdown failed: it raised RuntimeError('pool close failed')" in caplog.text


@pytest.mark.asyncio
async def test_an_app_that_never_answers_fails_at_the_timeout():
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.Event().wait()

    lifespan = Lifespan(silent, "/a")
    with pytest.raises(StartupFailed, match=r"did not answer lifespan\.startup within 0\.2s"):
        await lifespan.startup(0.2)
    await lifespan.shutdown(0.2)
    assert lifespan._task is not None and lifespan._task.done()


@pytest.mark.asyncio
async def test_a_shutdown_that_hangs_is_cancelled_at_the_timeout():
    cancelled = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lifespan = Lifespan(stuck, "/a")
    await lifespan.startup(5)
    await lifespan.shutdown(0.2)
    assert cancelled.is_set()
