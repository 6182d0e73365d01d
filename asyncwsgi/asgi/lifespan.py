"""The ASGI lifespan protocol for one mounted app. [loop]

``startup()`` runs before the server reports ready, ``shutdown()`` after its drain (the server
calls them in mount order). An app that does not take part (it raises at once on the
``lifespan`` scope, or returns without a word, as Starlette does not but many small apps do) is
fine: it is noted (a warning if it raised) and served anyway, as the spec asks. An app that
answers ``lifespan.startup.failed`` (Starlette does when its startup raises), or does not
answer within ``--graceful-timeout``, stops the server with ``StartupFailed``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Optional

from ..errors import StartupFailed
from ..log import error_log
from .scope import ASGI_VERSION


class Lifespan:
    """One app's lifespan task, from startup to shutdown."""

    def __init__(self, app: Any, name: str) -> None:
        self.app = app
        self.name = name  # the mount prefix, for messages
        self.state: Optional[Dict[str, Any]] = {}  # copied into each request's scope
        self.supported = True
        self._events: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()
        self._answer: Optional[asyncio.Future[Optional[str]]] = None  # None: complete; str: failed
        self._started = False  # the app answered lifespan.startup.complete
        self._task: Optional[asyncio.Task[None]] = None

    async def startup(self, timeout: float) -> None:
        """Send ``lifespan.startup`` and wait for the answer; StartupFailed if it is a failure."""
        loop = asyncio.get_running_loop()
        self._answer = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._events.put({"type": "lifespan.startup"})
        failure = await self._wait(timeout, "startup")
        if failure is not None:
            raise StartupFailed(f"ASGI app mounted at {self.name} failed to start: {failure}")

    async def shutdown(self, timeout: float) -> None:
        """Send ``lifespan.shutdown`` and wait (at most ``timeout``) for the app to finish."""
        if self._task is None:
            return
        if self.supported and not self._task.done():
            self._answer = asyncio.get_running_loop().create_future()
            await self._events.put({"type": "lifespan.shutdown"})
            try:
                failure = await self._wait(timeout, "shutdown")
            except StartupFailed as exc:
                failure = str(exc)
            if failure is not None:
                error_log.error("ASGI app mounted at %s: shutdown failed: %s", self.name, failure)
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _wait(self, timeout: float, phase: str) -> Optional[str]:
        assert self._answer is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._answer), timeout or None)
        except asyncio.TimeoutError:
            raise StartupFailed(
                f"ASGI app mounted at {self.name} did not answer lifespan.{phase} within {timeout:g}s"
            ) from None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            if self._answer is not None and not self._answer.done() and not self._started:
                # Raised before answering startup: the spec says to go on without lifespan
                # (most such apps are HTTP-only and choke on the scope). Said louder than a
                # debug line, since it may be a real startup failure.
                error_log.warning(
                    "ASGI app mounted at %s raised %r on the lifespan scope: taken as not supporting "
                    "lifespan, and served",
                    self.name,
                    exc,
                )
                self._unsupported(f"it raised {exc!r}")
                return
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(f"it raised {exc!r}")  # during shutdown
            error_log.error("ASGI app mounted at %s raised in lifespan", self.name, exc_info=exc)
            return
        if self._answer is not None and not self._answer.done():
            self._unsupported("it returned without answering")

    def _unsupported(self, how: str) -> None:
        error_log.debug("ASGI app mounted at %s does not support lifespan (%s); serving it anyway", self.name, how)
        self.supported = False
        self.state = None
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    async def _receive(self) -> Dict[str, Any]:
        return await self._events.get()

    async def _send(self, message: Dict[str, Any]) -> None:
        kind = message.get("type")
        answer = self._answer
        if kind == "lifespan.startup.complete":
            self._started = True
        if kind in ("lifespan.startup.complete", "lifespan.shutdown.complete"):
            if answer is not None and not answer.done():
                answer.set_result(None)
        elif kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            if answer is not None and not answer.done():
                answer.set_result(str(message.get("message", "")) or "no message given")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in lifespan")
