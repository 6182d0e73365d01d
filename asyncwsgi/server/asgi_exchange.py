"""The loop side of one request to a mounted ASGI app (``--mount``). [loop]

An ``ASGIExchange`` stands where an ``Exchange`` stands for a WSGI request: the protocol makes it
when a head under a mount's prefix is accepted, feeds it the body and tells it when the client
goes; it writes the response through the protocol. The app runs as a task on the loop, so no
thread is taken, however long the request lasts (a server-sent event stream, a long poll).

The protocol's rules hold as for WSGI: its limits and deadlines, its body checks, keep-alive and
pipelining (the next request waits for this response), the access log and the stats.

* ``receive()`` hands over the body bytes buffered so far in one ``http.request`` message; the
  connection is not read while more than ``--input-buffer-bytes`` wait (the same back-pressure
  as ``wsgi.input``). The first ``receive()`` sends ``100 Continue`` if the client waits for it.
  Once the body is delivered, ``receive()`` waits until the client leaves (or the response is
  complete) and returns ``http.disconnect``. A body that fails (``--max-body-bytes``, a stall,
  bad framing) raises the ``RequestBodyError`` from ``receive()``; if the app lets it escape
  before its response started, the client gets its status (413, 408, 400).
* ``send()`` checks each message (``asgi.messages``) and writes it; it waits while the client is
  not reading (past the write grant of ``flow``), and raises ``ClientDisconnected`` (an
  ``OSError``, as the spec asks) once the client is gone. The head goes out with the first
  body message; a response sent in one message gets a ``Content-Length``.
* An exception before the response started is a 500 with a logged traceback; after, the
  connection is closed, so the client never takes a cut response for a whole one.
* ``--request-timeout``: 504 if nothing was sent, else the connection is aborted; the task is
  cancelled either way.

States (``exchange.ExchangeState``): RUNNING while the response is in progress, DONE once it is
complete or the app has ended. Body bytes never wait for a thread, so there is no BUFFERING or
WAITING.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, Deque, Dict, Optional

import h11

from ..asgi.messages import body_of
from ..asgi.mounts import Mount
from ..asgi.scope import http_scope
from ..errors import ClientDisconnected, RequestBodyError
from ..http.head import Head
from ..http.response import CONTINUE, BodyFramer
from ..log import error_log
from ..types import Environ
from .asgi_response import ASGIResponse
from .exchange import DONE
from .mounted import MountedExchange

if TYPE_CHECKING:
    from .protocol import HTTPProtocol

_DISCONNECT = {"type": "http.disconnect"}


class ASGIExchange(MountedExchange):
    """One request/response cycle of a mounted ASGI app."""

    __slots__ = (
        "_body_delivered",
        "_body_done",
        "_chunks",
        "_error",
        "_gone",
        "continue_sent",
        "deadline_timer",
        "response",
        "scope",
        "timed_out",
    )

    def __init__(
        self, protocol: HTTPProtocol, request: h11.Request, environ: Environ, head: Head, mount: Mount, has_body: bool
    ) -> None:
        super().__init__(protocol, request, environ, mount)
        ctx = protocol.ctx
        self.scope = http_scope(environ, mount.prefix, head.path, head.fields, ctx.lifespan_state(mount.prefix))
        self.response = ASGIResponse(protocol, request, self._name())
        self.continue_sent = False
        self.timed_out = False
        self._chunks: Deque[bytes] = collections.deque()
        self._body_done = not has_body  # the last body byte has arrived
        self._body_delivered = False  # ... and receive() has handed it over
        self._error: Optional[BaseException] = None  # the body failed: receive() raises it
        self._gone = False  # the connection is lost: send() raises, receive() says disconnect
        self.deadline_timer: Optional[asyncio.TimerHandle] = None
        timeout = ctx.config.request_timeout
        if timeout:
            self.deadline_timer = ctx.loop.call_later(timeout, self._on_request_deadline)

    # --- what the protocol reads ---------------------------------------------------------------

    @property
    def framer(self) -> Optional[BodyFramer]:
        """The response's body framer, once its head is written."""
        return self.response.framer

    @property
    def response_complete(self) -> bool:
        return self.response.complete

    # --- from the protocol ----------------------------------------------------------------------

    def start(self) -> None:
        self.task = self.protocol.ctx.run_asgi(self._run())

    def on_body(self, data: bytes) -> None:
        if self._error is not None:
            return  # the body failed: nothing more of it reaches the app
        self._chunks.append(data)
        self._hold(len(data))
        self._notify()

    def on_body_end(self) -> None:
        if self._error is not None:
            return
        self._body_done = True
        self._notify()

    def fail(self, exc: BaseException) -> None:
        """The body cannot be read to its end: the app's next receive() raises (or, when the
        client left, says http.disconnect)."""
        if isinstance(exc, ClientDisconnected):
            self._eof = True
        else:
            self._error = exc  # as from wsgi.input: what is buffered is not handed over
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
            if not self.response.complete and not self._gone:
                if self.response.started:
                    error_log.error("%s: the app returned before its response ended; closing", self._name())
                    self.protocol.close()
                else:
                    error_log.error("%s: the app returned without a response", self._name())
                    self._respond(500)
        finally:
            self._finish()

    def _failed(self, exc: BaseException) -> None:
        error_log.error("%s: the app raised", self._name(), exc_info=exc)
        if self._gone or self.response.complete:
            return
        if self.response.started:
            self.protocol.close()  # a cut response must not look whole
        else:
            self._respond(500)

    def _respond(self, status: int) -> None:
        """A response of our own, when the app gave none."""
        self.response.plain(status)
        if self.response.complete:
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
            if not self.continue_sent and self.response.framer is None and self.protocol.awaiting_continue():
                self.continue_sent = True  # the first read invites the body (RFC 9110 §10.1.1)
                self.protocol.write(CONTINUE)
            await self._wait()
        while not (self._gone or self._eof or self.response.complete):
            await self._wait()
        return _DISCONNECT

    async def _send(self, message: Dict[str, Any]) -> None:
        if self._gone or self.timed_out or self.protocol.transport.is_closing():
            raise ClientDisconnected("client disconnected")
        kind = message.get("type")
        if kind == "http.response.start":
            if self.response.started:
                raise RuntimeError("http.response.start sent twice")
            self.response.start(message)
        elif kind == "http.response.body":
            if not self.response.started:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.response.complete:
                raise RuntimeError("http.response.body sent after the response ended")
            body, more = body_of(message)
            self._write(body, more)
            while more and self.protocol.write_paused and not self._gone:
                await self._wait()  # the client is not reading: wait for resume_writing
            if self._gone:
                raise ClientDisconnected("client disconnected")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an http connection")

    def _write(self, body: bytes, more: bool) -> None:
        if not self.response.body(body, more):
            self._gone = True  # it broke its framing: the connection is closing
            return
        if self.response.complete:
            self._notify()  # a receive() waiting for the end says http.disconnect
            self._finish()

    def _on_request_deadline(self) -> None:
        self.deadline_timer = None
        protocol = self.protocol
        if self.state is DONE or protocol.lost:
            return
        ctx = protocol.ctx
        ctx.stats.timeouts["request"] += 1
        self.timed_out = True
        detail = f"request not answered within --request-timeout ({ctx.config.request_timeout:g}s)"
        if self.response.framer is None:
            self.status = 504
            self.state = DONE  # the refusal is counted and logged as such; _finish adds nothing
            self._stop_deadline()
            protocol.send_error(504, detail, self.request)
        else:
            error_log.warning("%s: %s; aborting", self._name(), detail)
            protocol.abort()
        if self.task is not None:
            self.task.cancel()

    # --- helpers --------------------------------------------------------------------------------

    def _stop_deadline(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None

    def _finish(self) -> None:
        if self.state is DONE:
            return
        self.state = DONE
        self._stop_deadline()
        protocol = self.protocol
        if self.response.framer is not None:  # (not written: 0, as no response went out)
            self.status = self.response.status
        self.bytes_out = self.response.bytes_out
        self._log(protocol.body_bytes_received, self._gone or self._eof, self.timed_out)
        if protocol.exchange is self:
            protocol.exchange_finished(self)
