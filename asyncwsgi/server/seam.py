"""Where a connection and the request cycles it serves meet. [loop]

A connection (``server/connection/``) reads the client's bytes, parses heads, keeps the read
deadlines and the flow control; a request cycle (``server/cycle/``) serves one request: the WSGI
app on a thread, a mounted ASGI app, a WebSocket, or an answer the loop gives itself. Each holds
the other only as declared here:

* a cycle asks its connection what ``Connection`` lists, and nothing else;
* a connection tells its cycle what ``Cycle`` lists (and, after a WebSocket handshake, feeds its
  bytes to an ``Upgraded`` stream).

This module imports neither side; both import it, and nothing in ``cycle/`` imports the
connection's modules, not even for typing. ``dispatch`` (above the cycles, below the connection)
makes the cycle for an accepted head.
"""

from __future__ import annotations

import enum
from typing import Any, Dict, List, NamedTuple, Optional, Protocol, Sequence, Tuple

import h11

from ..http.response import BodyFramer, ResponseHead
from ..types import Environ
from ..wsgi.bridge import SocketLoan


class CycleState(enum.Enum):
    """Where a request cycle is; compared with ``is``.

    BUFFERING -- the loop reads the body whole before the app runs (--request-buffer-bytes), so
                 no thread waits on the client's upload; nothing is taken from the pool
    WAITING   -- parsed, no pool slot free yet; the connection is not read meanwhile
    RUNNING   -- the app runs (on a thread, or as a task on the loop); body in, response out
    DONE      -- its work is over: for WSGI, the job's last delivery has come and its slot is free
    """

    BUFFERING = "buffering"
    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"


BUFFERING, WAITING, RUNNING, DONE = CycleState

# Why a cycle stops its connection reading (the connection has reasons of its own besides).
PAUSE_BODY = 1  # more of the body waits for the app than it may hold
PAUSE_POOL = 2  # the request waits for a pool slot

Refusal = Tuple[int, str]
"""(status, detail): a request the server answers itself instead of making a cycle for it."""


class CycleReport(NamedTuple):
    """What a cycle tells the stats endpoint about itself (``probes.snapshot``)."""

    state: str  # its key under "connections": reading_body, waiting_for_thread, in_app, ...
    row: Optional[Dict[str, Any]]  # its line in "in_flight", while its app runs
    queued_at: float  # time.monotonic() it began to wait for a thread (0: it does not wait)
    in_pool: bool  # it waits in the pool's queue (admitted, no thread has taken it yet)


class Connection(Protocol):
    """What a request cycle may ask of its connection (``connection.protocol.HTTPProtocol``)."""

    @property
    def closing(self) -> bool:
        """Closed, closing or lost: nothing written now reaches the client."""

    @property
    def write_paused(self) -> bool:
        """The client is not keeping up: writes wait (``Cycle.writes_unblocked`` says when)."""

    def write(self, data: Any) -> None: ...

    def writelines(self, pieces: List[Any]) -> None:
        """Several pieces at once, as few sends as the loop allows."""

    async def sendfile(self, file: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of the file descriptor ``file`` from ``offset`` without reading
        them in; the bytes sent (fewer if the file ended). OSError when the client goes or stops
        reading (--write-timeout); NotImplementedError where the kernel cannot (TLS)."""

    def open_response(self, request: h11.Request, head: ResponseHead, close: bool = False) -> Tuple[bytes, BodyFramer]:
        """The head's bytes and the body's framer, with the connection's say on keep-alive
        (``close``: this response ends the connection whatever else is true)."""

    def send_continue(self) -> None:
        """Invite the body with 100 Continue if the client waits for it and nothing was sent."""

    def lend_socket(self, request: h11.Request) -> Optional[SocketLoan]:
        """The socket, for the app's thread to write a whole response itself; None where the
        loop must write it (the connection recalls it before it writes or closes)."""

    def response_written(self, closes: bool) -> None:
        """The app's thread wrote a whole response on the lent socket (``closes``: it said
        the connection ends after it)."""

    def pause_reading(self, reason: int) -> None: ...

    def resume_reading(self, reason: int) -> None: ...

    def watch_for_reset(self, watch: bool) -> bool:
        """Watch the socket for a reset while it is not read (``Cycle.client_reset`` is called
        if one comes), or stop watching; stopping returns whether a reset has come meanwhile."""

    def refuse(
        self, status: int, detail: str, request: Optional[h11.Request], headers: Sequence[Tuple[bytes, bytes]] = ()
    ) -> None:
        """Answer a plain-text ``status`` (unless a response has begun) and end the connection."""

    def cycle_finished(self, cycle: Cycle) -> None:
        """The cycle's work is over and its response written: on to the next request, or close."""

    def upgrade(self, stream: Upgraded) -> None:
        """The connection now carries a WebSocket: its bytes go to ``stream``."""

    def close(self) -> None:
        """Close once what was written is sent."""

    def abort(self) -> None:
        """Close now; what was not sent is dropped."""

    def linger(self) -> None:
        """Half-close, read and discard what still comes for a while, then close: a client in the
        middle of sending reads what we wrote instead of a reset."""


class Cycle(Protocol):
    """What a connection may tell (and ask) the request cycle it serves."""

    request: h11.Request

    @property
    def done(self) -> bool:
        """Its work is over (``CycleState.DONE``)."""

    @property
    def reusable(self) -> bool:
        """Its response is complete as framed, and the connection may carry another request."""

    def start(self) -> None:
        """The head is accepted and the connection set up for it: begin."""

    def on_body(self, data: bytes) -> None: ...

    def on_body_end(self) -> None: ...

    def body_failed(self, exc: Exception) -> None:
        """The body cannot be read to its end (a ``RequestBodyError``): refuse the request if
        the app has not run yet, else the app's next read raises it."""

    def client_closed(self, mid_body: bool) -> None:
        """The client closed its side (``mid_body``: before its body ended)."""

    def client_reset(self) -> None:
        """The client reset its connection while the cycle watched for it (``watch_for_reset``)."""

    def connection_lost(self) -> None: ...

    def writes_blocked(self) -> None:
        """The client stopped reading: writes now wait."""

    def writes_unblocked(self) -> None: ...

    def report(self, now: float, stacks: bool) -> CycleReport:
        """Its state for the stats endpoint (with ``stacks``: where its app is)."""


class Upgraded(Protocol):
    """What a connection tells the stream it carries after a WebSocket handshake."""

    def feed(self, data: bytes) -> None: ...

    def feed_eof(self) -> None: ...

    def going_away(self) -> None:
        """The server drains: close the stream (1001)."""

    def connection_lost(self) -> None: ...


def in_flight(environ: Environ, now: float, started: float, in_app: float, thread: Optional[str]) -> Dict[str, Any]:
    """A request's row in the stats' ``in_flight`` list."""
    return {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "client": environ.get("REMOTE_ADDR"),
        "age_seconds": round(now - started, 6),
        "in_app_seconds": round(now - in_app, 6),
        "thread": thread,
    }
