"""The checks a connection's input passes before h11 parses it. [loop]

``HTTPProtocol`` is built on ``WireInput`` (itself built on ``flow.FlowControl``). The checks are
the pure ones of ``http.wirecheck`` and ``http.proxyprotocol``; this layer keeps their state
across reads and says where a refusal goes:

* the PROXY protocol preamble (``--proxy-protocol``, from trusted peers) before the first head;
* each head's bytes, before h11 sees them (bare LF or CR, obs-fold, CTLs; up to
  ``MAX_BLANK_LINES`` empty lines skipped), answered 400 at a fault;
* a chunked body's framing, followed beside h11 while the body lasts.

A base class rather than a member object for the reason ``flow`` gives: an idle connection
pays for these fields in its ``__slots__`` and for nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple

import h11

from ...errors import ProxyProtocolError
from ...http import wirecheck
from ...http.proxyprotocol import Preamble
from ...http.wirecheck import ChunkedChecker, FramingRefused, HeadScanner
from .flow import FlowControl

if TYPE_CHECKING:
    from ..context import ServerContext


class WireInput(FlowControl):
    """Per-connection state of the input checks; subclasses answer refusals."""

    __slots__ = ("_chunks", "_head_read", "_head_scan", "_head_source", "_proxy")

    def __init__(self, ctx: ServerContext, client: Optional[Tuple[str, str]]) -> None:
        super().__init__(ctx, client)
        self._proxy: Optional[Preamble] = None  # --proxy-protocol, from a trusted peer
        self._head_scan: Optional[HeadScanner] = None  # while a head arrives in pieces
        # The read holding the last complete head and the offset past it (the bytes after the
        # head may start a chunked body); and the head's own bytes: source[:end].
        self._head_read: Tuple[Any, int] = (b"", 0)
        self._head_source: Tuple[Any, int] = (b"", 0)
        self._chunks: Optional[ChunkedChecker] = None  # a chunked body in progress

    # --- hooks ---------------------------------------------------------------------------------

    def refuse(
        self,
        status: int,
        detail: str,
        request: Optional[h11.Request],
        headers: Sequence[Tuple[bytes, bytes]] = (),
    ) -> None:
        """Answer a request refused before the app saw it."""
        raise NotImplementedError

    def _chunks_refused(self, exc: FramingRefused) -> None:
        """A chunked body in progress broke its framing."""
        raise NotImplementedError

    # --- checks --------------------------------------------------------------------------------

    def _read_proxy_header(self, data: bytes) -> bytes:
        """--proxy-protocol: the bytes after the header (empty while it is incomplete or refused)."""
        preamble = self._proxy
        assert preamble is not None
        try:
            rest = preamble.feed(data)
        except ProxyProtocolError as exc:
            self.refuse(400, f"PROXY protocol: {exc}", None)
            return b""
        if rest is None:
            return b""
        assert preamble.header is not None
        if preamble.header.client is not None:
            self.client = preamble.header.client
        return rest

    def _scan_head(self, data: bytes) -> bytes:
        """Check the bytes of the next head before h11 parses them.

        Returns what h11 should get: ``data`` less leading empty lines; empty when there is
        nothing to parse yet, or when the head was refused (answered 400 here).
        """
        scan = self._head_scan
        try:
            if scan is None:
                # Most heads come whole in one read: check them without a scanner (0.9 µs).
                end = data.find(b"\r\n\r\n") if data[:1] != b"\r" else -1
                if end >= 0:
                    end += 4
                    wirecheck.check_head(data, 0, end)
                    self._head_read = self._head_source = (data, end)
                    return data
                scan = self._head_scan = HeadScanner()
            checked, end = scan.feed(data)
        except FramingRefused as exc:
            self._head_scan = None
            self.refuse(exc.status, str(exc), None)
            return b""
        if end >= 0:
            self._head_scan = None
            self._head_read = (checked, end)
            self._head_source = scan.source
        return checked  # type: ignore[return-value]

    def _head(self) -> bytes:
        """The last complete head's bytes (for the rare checks that need them raw)."""
        source, end = self._head_source
        return bytes(source[:end])

    def _start_chunks(self, request: h11.Request) -> bool:
        """A chunked body begins: check the part that came with its head (before h11 yields
        it) and follow the rest. False (and the request refused) at a fault."""
        checker = ChunkedChecker()
        read, end = self._head_read
        try:
            checker.feed(read[end:])
        except FramingRefused as exc:
            self.refuse(400, f"malformed chunked body: {exc}", request)
            return False
        self._chunks = None if checker.done else checker
        return True

    def _check_chunks(self, data: bytes) -> bool:
        """Follow a chunked body's framing; False (and the body refused) at a fault."""
        chunks = self._chunks
        assert chunks is not None
        try:
            chunks.feed(data)
        except FramingRefused as exc:
            self._chunks = None
            self._chunks_refused(exc)
            return False
        if chunks.done:
            self._chunks = None
        return True
