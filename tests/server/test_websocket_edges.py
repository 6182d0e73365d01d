"""WebSocket edges a polite client never shows, over raw sockets on both loops: permessage-deflate
offers (RFC 7692 §7.1), a frame whose header alone is over --ws-max-size (RFC 6455 §7.4.1, 1009),
the close reason carried to the app (ASGI spec 2.5), and the framing of a denial response."""

from __future__ import annotations

import logging
import os
import struct
from typing import Any, List

import pytest
from websockets.sync.client import connect as ws_connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Request

from tests.helpers import WAIT, Reader, connect, get, request, wait_for
from tests.server.test_websocket import Recorder, handshake, raw_websocket, url, wsgi_app


@pytest.fixture
def app() -> Recorder:
    return Recorder()


@pytest.mark.parametrize(
    "offer, agreed",
    [
        (b"permessage-deflate", b"permessage-deflate; client_no_context_takeover; server_no_context_takeover"),
        # RFC 7692 §7.1: an offer with a parameter we do not know, a parameter twice, or a value
        # that is not valid is declined; the handshake still succeeds, without the extension.
        (b"permessage-deflate; x_unknown=1", None),
        (b"permessage-deflate; server_max_window_bits=abc", None),
        (b"permessage-deflate; server_max_window_bits=010", None),
        (b"permessage-deflate; server_max_window_bits=16", None),
        (b"permessage-deflate; server_max_window_bits", None),  # needs a value in an offer
        (b"permessage-deflate; client_max_window_bits=7", None),
        (b"permessage-deflate; server_no_context_takeover=1", None),
        (b"permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
        (b'permessage-deflate; server_max_window_bits="1', None),  # an unclosed quoted-string
        # zlib cannot make a raw deflate stream with a 256-byte window: declined, not a 500.
        (b"permessage-deflate; server_max_window_bits=8", None),
        # A quoted-string value is valid (RFC 6455 §9.1) and means the same as the token.
        (
            b'permessage-deflate; server_max_window_bits="10"',
            b"permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=10",
        ),
        # The client's own window is a hint we may ignore (§7.1.2.2): we inflate with the largest.
        (
            b'permessage-deflate; client_max_window_bits="10"',
            b"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
        ),
        (
            b"permessage-deflate; client_max_window_bits",
            b"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
        ),
        # The first offer we can accept wins; the others are ignored (§5).
        (
            b"permessage-deflate; x=1, permessage-deflate; server_max_window_bits=12, permessage-deflate",
            b"permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=12",
        ),
        (b"x-webkit-deflate-frame, permessage-deflate; x=1", None),
    ],
    ids=[
        "plain",
        "unknown-parameter",
        "window-not-a-number",
        "window-leading-zero",
        "window-too-large",
        "server-window-without-value",
        "client-window-too-small",
        "flag-with-value",
        "parameter-twice",
        "unclosed-quote",
        "window-8",
        "quoted-server-window",
        "quoted-client-window",
        "bare-client-window",
        "first-acceptable-offer",
        "nothing-acceptable",
    ],
)
def test_deflate_offers_are_accepted_only_when_valid(serve, app, caplog, offer, agreed):
    caplog.set_level(logging.ERROR, logger="asyncwsgi.error")
    srv = serve(wsgi_app, mounts={"/ws": app})
    resp = request(srv.port, handshake(extra=b"Sec-WebSocket-Extensions: " + offer + b"\r\n"))
    assert resp.status == 101, resp.raw
    assert resp.header(b"sec-websocket-extensions") == agreed
    assert "Traceback" not in caplog.text and "raised" not in caplog.text


def test_an_accepted_window_offer_is_used_for_messages(serve, app):
    """A quoted server_max_window_bits is agreed and the messages both ways inflate with it."""
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(url(srv, "/ws/x"), compression="deflate", open_timeout=WAIT) as ws:
        text = "window " * 5000
        ws.send(text)
        assert ws.recv(WAIT) == text


def _frame_header(opcode: int, length: int, fin: bool = True) -> bytes:
    """A masked frame header as a client sends it (RFC 6455 §5.2), declaring ``length`` bytes."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        head = bytes([first, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", length)
    return head + os.urandom(4)


def _closes(sock: Any, client: WSConnection) -> List[CloseConnection]:
    sock.settimeout(WAIT)
    while True:
        data = sock.recv(65536)
        if not data:
            return []
        client.receive_data(data)
        closes = [e for e in client.events() if isinstance(e, CloseConnection)]
        if closes:
            return closes


def test_a_frame_header_over_the_size_limit_closes_with_1009_at_once(serve, app):
    """2^40 bytes declared: the close comes as soon as the header is read, not after the data."""
    srv = serve(wsgi_app, mounts={"/ws": app})  # the default --ws-max-size
    sock, client = raw_websocket(srv.port)
    with sock:
        sock.sendall(_frame_header(0x2, 1 << 40) + b"x" * 1000)
        closes = _closes(sock, client)
        assert closes and closes[0].code == 1009
        assert Reader(sock).closed()  # the client cannot answer mid-frame: the server hangs up
    assert wait_for(lambda: app.events and app.events[-1]["type"] == "websocket.disconnect")
    assert app.events == [{"type": "websocket.disconnect", "code": 1009, "reason": ""}]


def test_a_fragment_that_takes_the_message_over_the_limit_closes_with_1009(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_max_size=1000)
    sock, client = raw_websocket(srv.port)
    with sock:
        first = _frame_header(0x1, 600, fin=False)
        payload = bytes(b ^ first[-4:][i % 4] for i, b in enumerate(b"a" * 600))
        sock.sendall(first + payload + _frame_header(0x0, 600))  # the continuation's header only
        closes = _closes(sock, client)
        assert closes and closes[0].code == 1009
    assert wait_for(lambda: app.events and app.events[-1]["type"] == "websocket.disconnect")
    assert [e["code"] for e in app.events] == [1009]


def test_messages_before_an_oversized_header_still_reach_the_app(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_max_size=1000)
    sock, client = raw_websocket(srv.port)
    with sock:
        head = _frame_header(0x1, 5)
        hello = head + bytes(b ^ head[-4:][i % 4] for i, b in enumerate(b"hello"))
        sock.sendall(hello + _frame_header(0x2, 5000))
        assert _closes(sock, client)[0].code == 1009
    assert wait_for(lambda: app.ended.is_set())  # (its echo of "hello" finds the session closed)
    assert app.events[0] == {"type": "websocket.receive", "text": "hello"}


def test_the_clients_close_reason_reaches_the_app(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT) as ws:
        ws.close(4001, "bye")
    assert wait_for(lambda: app.events and app.events[-1]["type"] == "websocket.disconnect")
    assert app.events[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
    assert app.scopes[-1]["asgi"]["spec_version"] == "2.5"  # the version that added it


def test_a_lost_connection_has_no_reason(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    sock, _ = raw_websocket(srv.port)
    sock.close()
    assert wait_for(lambda: app.events and app.events[-1]["type"] == "websocket.disconnect")
    assert app.events[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def denial(status: int, headers: Any, body: bytes, split: bool = False) -> Any:
    async def deny(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        if split:
            await send({"type": "websocket.http.response.body", "body": body, "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b""})
        else:
            await send({"type": "websocket.http.response.body", "body": body})

    return deny


@pytest.mark.parametrize(
    "status, headers, body, split, length, sent",
    [
        (204, [], b"oops", False, None, b""),
        (304, [(b"etag", b'"v1"')], b"", False, None, b""),
        (304, [(b"content-length", b"99")], b"", False, b"99", b""),
        (401, [], b"go away", False, b"7", b"go away"),
        (401, [(b"transfer-encoding", b"chunked")], b"go away", False, b"7", b"go away"),
        (401, [], b"go away", True, None, b"go away"),
    ],
    ids=["204-with-body", "304", "304-with-length", "one-message", "app-transfer-encoding", "streamed"],
)
def test_a_denial_response_is_framed_like_any_response(serve, caplog, status, headers, body, split, length, sent):
    caplog.set_level(logging.ERROR, logger="asyncwsgi.error")
    srv = serve(wsgi_app, mounts={"/ws": denial(status, headers, body, split)})
    with connect(srv.port) as sock:
        sock.sendall(handshake())
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == status and resp.reason  # a reason phrase, as on every response
        assert resp.header(b"content-length") == length, resp.raw
        assert resp.body == sent
        assert resp.header(b"connection") == b"close" and resp.header(b"date") is not None
        assert reader.closed()  # a denied handshake ends the connection
    assert "Traceback" not in caplog.text and "raised" not in caplog.text


def test_a_denial_then_plain_http_on_a_new_connection(serve):
    srv = serve(wsgi_app, mounts={"/ws": denial(403, [], b"no")})
    assert request(srv.port, handshake()).status == 403
    assert request(srv.port, get("/x")).status == 200


def test_an_oversized_header_with_deflate_closes_with_1009(serve, app):
    """Compressed, the check is on the frame's wire length (a compressed payload over
    --ws-max-size is refused whatever it would inflate to)."""
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_max_size=1000)
    client = WSConnection(ConnectionType.CLIENT)
    from wsproto.extensions import PerMessageDeflate

    sock = connect(srv.port)
    with sock:
        sock.sendall(client.send(Request(host="t", target="/ws/x", extensions=[PerMessageDeflate()])))
        sock.settimeout(WAIT)
        while not list(client.events()):
            client.receive_data(sock.recv(65536))
        head = bytearray(_frame_header(0x2, 1 << 20))
        head[0] |= 0x40  # RSV1: compressed
        sock.sendall(bytes(head))
        closes = _closes(sock, client)
        assert closes and closes[0].code == 1009
