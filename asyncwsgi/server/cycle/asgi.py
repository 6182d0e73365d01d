"""One request to a mounted ASGI app (``--mount``), and how an ASGI app's response is written. [loop]

An ``ASGICycle`` stands where a ``wsgi.WSGICycle`` stands for the WSGI app: dispatch makes it for
a head under a mount's prefix, the connection feeds it the body and tells it when the client
goes. The app runs as a task on the loop, so no thread is taken however long the request lasts
(a server-sent event stream, a long poll). The connection's rules hold as for WSGI: its limits
and deadlines, its body checks, keep-alive and pipelining, the access log and the stats.

* ``receive()`` hands over the body bytes buffered so far in one ``http.request`` message; the
  connection is not read while more than ``--input-buffer-bytes`` wait. The first ``receive()``
  sends ``100 Continue`` if the client waits for it. Once the body is delivered, ``receive()``
  waits until the client leaves (or the response is complete) and returns ``http.disconnect``.
  A body that fails (``--max-body-bytes``, a stall, bad framing) raises its
  ``RequestBodyError`` from ``receive()``; if the app lets it escape before its response
  started, the client gets its status (413, 408, 400).
* ``send()`` checks each message (``asgi.messages``) and writes it (``ASGIResponse``); it waits
  while the client is not reading, and raises ``ClientDisconnected`` (an ``OSError``, as the
  spec asks) once the client is gone.
* An exception before the response started is a 500 with a logged traceback; after, the
  connection is closed, so the client never takes a cut response for a whole one.
* ``--request-timeout``: 504 if nothing was sent, else the connection is aborted; the task is
  cancelled either way.

States: RUNNING while the response is in progress, DONE once it is complete or the app has
ended. Body bytes never wait for a thread, so there is no BUFFERING or WAITING.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional

import h11

from ...asgi.messages import body_of, response_head
from ...asgi.mounts import Mount
from ...asgi.scope import http_scope
from ...errors import ClientDisconnected, RequestBodyError
from ...http import plain
from ...http.head import Head
from ...http.response import NO_CONTENT_STATUSES, FramingError, ResponseHead
from ...log import error_log
from ...types import Environ
from ..seam import DONE, Connection
from .mounted import MountedCycle
from .writer import ResponseWriter

if TYPE_CHECKING:
    from ..context import ServerContext

_DISCONNECT = {"type": "http.disconnect"}


class ASGIResponse(ResponseWriter):
    """One response from an ASGI app's messages: a request's ``http.response.*``, or a WebSocket
    denial's ``websocket.http.response.*``.

    The start message is checked (``asgi.messages``) and held until the first body message, so a
    response sent in one message gets a ``Content-Length``, the cheapest framing; never a 204 or a
    304 (RFC 9110 §8.6: a 304's length is the 200's, which only the app knows), nor an empty
    answer to HEAD (the GET's body need not be empty).
    """

    __slots__ = ("_close", "_has_length", "_head", "_name")

    def __init__(self, connection: Connection, request: h11.Request, name: str, close: bool = False) -> None:
        super().__init__(connection, request)
        self._name = name  # for log lines: the request and the mount
        self._close = close  # the response ends the connection (a WebSocket denial)
        self._head: Optional[ResponseHead] = None  # from the start message, until the first body
        self._has_length = False

    @property
    def started(self) -> bool:
        """The start message has come (the head may still wait for the first body)."""
        return self._head is not None or self.response_started

    def start(self, message: Any) -> None:
        """The start message: checked now (TypeError, ValueError), written with the first body."""
        self._head, self._has_length = response_head(message)
        self.status = self._head.status_code

    def plain(self, status: int) -> None:
        """A plain-text response of the server's own (``http.plain``), when the app gave none:
        a 500, the 413 of a body that failed, the 403 of a refused WebSocket."""
        self._head = plain.head(status)
        self._has_length = True
        self.status = status
        self.body(plain.body(status), False)

    def body(self, body: bytes, more: bool) -> bool:
        """Write a body message (the head first, if not yet); False if the response broke its
        framing and the connection is closing."""
        out: List[Any] = []
        head = self._head
        if head is not None:
            if (
                not more
                and not self._has_length
                and head.status_code not in NO_CONTENT_STATUSES
                and (body or self.request.method != b"HEAD")
            ):
                head.headers.append((b"content-length", b"%d" % len(body)))
            self._head = None
        try:
            if not self._pieces(out, head, body, not more, self._close):
                # Past its Content-Length: the declared bytes are the response; then close.
                error_log.error("%s: the app sent more than its Content-Length; closing after it", self._name)
                if more:
                    self._pieces(out, None, b"", True)
        except FramingError as exc:
            error_log.error("%s: response violates HTTP framing: %s; closing", self._name, exc)
            self.connection.writelines(out)
            self.connection.close()
            return False
        self.connection.writelines(out)
        return True


class ASGICycle(MountedCycle):
    """One request/response cycle of a mounted ASGI app."""

    __slots__ = (
        "_body_delivered",
        "_body_done",
        "_chunks",
        "_error",
        "_gone",
        "bytes_in",
        "deadline_timer",
        "response",
        "scope",
        "timed_out",
    )

    def __init__(
        self,
        ctx: ServerContext,
        connection: Connection,
        request: h11.Request,
        environ: Environ,
        head: Head,
        mount: Mount,
        has_body: bool,
    ) -> None:
        super().__init__(ctx, connection, request, environ, mount)
        self.scope = http_scope(environ, mount.prefix, head.path, head.fields, ctx.lifespan_state(mount.prefix))
        self.response = ASGIResponse(connection, request, self._name())
        self.timed_out = False
        self.bytes_in = 0
        self._chunks: Deque[bytes] = collections.deque()
        self._body_done = not has_body  # the last body byte has arrived
        self._body_delivered = False  # ... and receive() has handed it over
        self._error: Optional[BaseException] = None  # the body failed: receive() raises it
        self._gone = False  # the connection is lost: send() raises, receive() says disconnect
        self.deadline_timer: Optional[asyncio.TimerHandle] = None
        timeout = ctx.config.request_timeout
        if timeout:
            self.deadline_timer = ctx.loop.call_later(timeout, self._on_request_deadline)

    @property
    def reusable(self) -> bool:
        return self.response.reusable

    # --- from the connection --------------------------------------------------------------------

    def start(self) -> None:
        self.task = self.ctx.run_asgi(self._run())

    def on_body(self, data: bytes) -> None:
        if self._error is not None:
            return  # the body failed: nothing more of it reaches the app
        self.bytes_in += len(data)
        self._chunks.append(data)
        self._hold(len(data))
        self._notify()

    def on_body_end(self) -> None:
        if self._error is not None:
            return
        self._body_done = True
        self._notify()

    def body_failed(self, exc: Exception) -> None:
        """The app's next receive() raises it; what is buffered is not handed over (as from
        wsgi.input)."""
        self._error = exc
        self._chunks.clear()
        self._notify()

    def connection_lost(self) -> None:
        self._gone = True
        self._stop_deadline()
        self._notify()

    # --- the app's task -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.mount.app(self.scope, self._receive, self._send)
        except asyncio.CancelledError:
            if not self.timed_out:
                raise
        except RequestBodyError as exc:
            if not self.response.started and not self._gone:
                self._respond(exc.status)
            else:
                self._failed(exc)
        except ClientDisconnected:
            pass  # the client left; its app stopped at its next send()
        except Exception as exc:
            self._failed(exc)
        else:
            if not self.response.response_complete and not self._gone:
                if self.response.started:
                    error_log.error("%s: the app returned before its response ended; closing", self._name())
                    self.connection.close()
                else:
                    error_log.error("%s: the app returned without a response", self._name())
                    self._respond(500)
        finally:
            self._finish()

    def _failed(self, exc: BaseException) -> None:
        error_log.error("%s: the app raised", self._name(), exc_info=exc)
        if self._gone or self.response.response_complete:
            return
        if self.response.started:
            self.connection.close()  # a cut response must not look whole
        else:
            self._respond(500)

    def _respond(self, status: int) -> None:
        """A response of our own, when the app gave none."""
        self.response.plain(status)
        if self.response.response_complete:
            self._finish()

    async def _receive(self) -> Dict[str, Any]:
        while not self._body_delivered:
            if self._error is not None:
                raise self._error
            if self._chunks:
                body = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                self._taken(len(body))
                more = not self._body_done
                self._body_delivered = not more
                return {"type": "http.request", "body": body, "more_body": more}
            if self._gone or self._eof:
                return _DISCONNECT
            if self._body_done:
                self._body_delivered = True
                return {"type": "http.request", "body": b"", "more_body": False}
            self.connection.send_continue()  # the first read invites the body (RFC 9110 §10.1.1)
            await self._wait()
        while not (self._gone or self._eof or self.response.response_complete):
            await self._wait()
        return _DISCONNECT

    async def _send(self, message: Dict[str, Any]) -> None:
        if self._gone or self.timed_out or self.connection.closing:
            raise ClientDisconnected("client disconnected")
        kind = message.get("type")
        response = self.response
        if kind == "http.response.start":
            if response.started:
                raise RuntimeError("http.response.start sent twice")
            response.start(message)
        elif kind == "http.response.body":
            if not response.started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if response.response_complete:
                raise RuntimeError("http.response.body sent after the response ended")
            body, more = body_of(message)
            if not response.body(body, more):
                self._gone = True  # it broke its framing: the connection is closing
            elif response.response_complete:
                self._notify()  # a receive() waiting for the end says http.disconnect
                self._finish()
                return
            while more and self.connection.write_paused and not self._gone:
                await self._wait()  # the client is not reading: wait for writes_unblocked
            if self._gone:
                raise ClientDisconnected("client disconnected")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an http connection")

    def _on_request_deadline(self) -> None:
        self.deadline_timer = None
        if self.state is DONE or self._gone:
            return
        ctx = self.ctx
        ctx.stats.timeouts["request"] += 1
        self.timed_out = True
        detail = f"request not answered within --request-timeout ({ctx.config.request_timeout:g}s)"
        if self.response.response_started:
            error_log.warning("%s: %s; aborting", self._name(), detail)
            self.connection.abort()
        else:
            self.state = DONE  # the refusal is counted and logged as such; _finish adds nothing
            self._stop_deadline()
            self.connection.refuse(504, detail, self.request)
        if self.task is not None:
            self.task.cancel()

    # --- the end --------------------------------------------------------------------------------

    def _stop_deadline(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None

    def _finish(self) -> None:
        if self.state is DONE:
            return
        self.state = DONE
        self._stop_deadline()
        response = self.response
        status = response.status if response.response_started else 0  # (0: no response went out)
        self._log(status, response.bytes_out, self.bytes_in, self._gone or self._eof, self.timed_out)
        self.connection.cycle_finished(self)
