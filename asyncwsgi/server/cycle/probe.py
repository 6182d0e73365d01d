"""A health, readiness or stats request, answered by the loop itself. [loop]

``--health-path``, ``--ready-path`` and ``--stats-path`` take no thread, so they answer while
every thread is stuck in the app (``probes`` says what each answers). Like any request, the
answer keeps the connection's keep-alive and pipelining, and is counted and logged.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, List, Optional

import h11

from ...http import plain
from ...http.response import ResponseHead
from ...types import Environ
from ..access import record
from ..probes import answer
from ..seam import DONE, RUNNING, Connection, CycleReport
from .writer import ResponseWriter

if TYPE_CHECKING:
    from ..context import ServerContext


class ProbeCycle(ResponseWriter):
    """One request to a probe path (GET or HEAD)."""

    __slots__ = ("_ctx", "_environ", "_kind", "_peer", "_started", "state")

    def __init__(
        self,
        ctx: ServerContext,
        connection: Connection,
        request: h11.Request,
        environ: Environ,
        kind: str,
        peer: Optional[str],
    ) -> None:
        super().__init__(connection, request)
        self._ctx = ctx
        self._environ = environ
        self._kind = kind  # context.HEALTH, READY or STATS
        self._peer = peer  # the socket's peer (not a forwarded client): who may see stacks
        self._started = time.monotonic()
        self.state = RUNNING

    @property
    def done(self) -> bool:
        return self.state is DONE

    def start(self) -> None:
        # Answered on the loop's next turn: the connection is in its request phase by then.
        self._ctx.loop.call_soon(self._answer)

    def _answer(self) -> None:
        if self.state is DONE or self.connection.closing:
            return
        environ = self._environ
        status, content_type, body = answer(
            self._ctx,
            self._kind,
            environ.get("QUERY_STRING", "").encode("latin-1"),
            environ.get("HTTP_ACCEPT", ""),
            self._peer,
        )
        headers = [
            (b"Content-Type", content_type.encode("latin-1")),
            (b"Content-Length", b"%d" % len(body)),
            (b"Cache-Control", b"no-store"),
        ]
        out: List[Any] = []
        self._pieces(out, ResponseHead(status, plain.reason(status), headers), body, True)
        self.connection.writelines(out)
        self.state = DONE
        record(self._ctx, environ, self.request, self.status, self.bytes_out, self._started)
        self.connection.cycle_finished(self)

    # A probe has no body (GET or HEAD) and no thread: the rest of the seam is quiet.

    def on_body(self, data: bytes) -> None:
        """(h11 yields no body for these requests.)"""

    def on_body_end(self) -> None: ...

    def body_failed(self, exc: Exception) -> None: ...

    def client_closed(self, mid_body: bool) -> None: ...

    def client_reset(self) -> None: ...

    def connection_lost(self) -> None:
        self.state = DONE

    def writes_blocked(self) -> None: ...

    def writes_unblocked(self) -> None: ...

    def report(self, now: float, stacks: bool) -> CycleReport:
        return CycleReport("answered_by_loop", None, 0.0, False)  # a probe like this one
