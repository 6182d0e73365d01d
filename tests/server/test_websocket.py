"""WebSockets for mounted ASGI apps, end to end over real sockets on both loops, with the
`websockets` library as the client (and raw sockets for what a polite client never does)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import threading
import time
from typing import Any, Dict, List

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol
from wsproto import ConnectionType, WSConnection
from wsproto.events import CloseConnection, Ping, Request

from tests.helpers import WAIT, Reader, connect, get, request, wait_for


def wsgi_app(environ, start_response):
    body = f"wsgi {environ['PATH_INFO']} upgrade={environ.get('HTTP_UPGRADE')}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


class Recorder:
    """An ASGI WebSocket app that echoes, and records what it received and how it ended."""

    def __init__(self) -> None:
        self.events: List[Dict[str, Any]] = []
        self.scopes: List[Dict[str, Any]] = []
        self.ended = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        self.scopes.append(scope)
        try:
            message = await receive()
            assert message["type"] == "websocket.connect"
            path = scope["path"]
            if path.endswith("/deny"):
                await send({"type": "websocket.close"})
                return
            if path.endswith("/custom-deny"):
                body = b"go away"
                await send(
                    {
                        "type": "websocket.http.response.start",
                        "status": 401,
                        "headers": [(b"content-length", b"%d" % len(body)), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "websocket.http.response.body", "body": body})
                return
            if path.endswith("/raise"):
                raise RuntimeError("before accept")
            subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
            await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-hello", b"1")]})
            while True:
                message = await receive()
                self.events.append(message)
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "close-4001":
                    await send({"type": "websocket.close", "code": 4001, "reason": "asked"})
                elif message.get("text") == "raise":
                    raise RuntimeError("after accept")
                elif message.get("text") == "scope":
                    info = {"path": path, "root_path": scope["root_path"], "scheme": scope["scheme"]}
                    await send({"type": "websocket.send", "text": json.dumps(info)})
                else:
                    await send({"type": "websocket.send", **{k: v for k, v in message.items() if k != "type"}})
        finally:
            self.ended.set()


@pytest.fixture
def app() -> Recorder:
    return Recorder()


def headers_of(ws: Any) -> Any:
    assert ws.response is not None
    return ws.response.headers


def url(srv, path: str) -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def test_text_and_binary_messages_round_trip(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(url(srv, "/ws/echo"), open_timeout=WAIT) as ws:
        ws.send("héllo")
        assert ws.recv(WAIT) == "héllo"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(WAIT) == b"\x00\xff" * 1000
        ws.send("scope")
        assert json.loads(ws.recv(WAIT)) == {"path": "/ws/echo", "root_path": "/ws", "scheme": "ws"}
        assert headers_of(ws)["x-hello"] == "1"
    assert wait_for(lambda: app.events and app.events[-1]["type"] == "websocket.disconnect")
    assert app.events[-1]["code"] == 1000


def test_subprotocol_and_permessage_deflate_are_negotiated(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(
        url(srv, "/ws/x"), subprotocols=[Subprotocol("chat.v2")], compression="deflate", open_timeout=WAIT
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        assert "permessage-deflate" in headers_of(ws)["Sec-WebSocket-Extensions"]
        big = "a" * 200_000  # compresses to almost nothing
        ws.send(big)
        assert ws.recv(WAIT) == big


def test_deflate_keeps_no_state_between_messages_unless_asked(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(url(srv, "/ws/x"), compression="deflate", open_timeout=WAIT) as ws:
        agreed = headers_of(ws)["Sec-WebSocket-Extensions"]
        assert "server_no_context_takeover" in agreed and "client_no_context_takeover" in agreed
        for text in ("one " * 100, "two " * 100):  # each message compressed afresh, both ways
            ws.send(text)
            assert ws.recv(WAIT) == text
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_deflate_context_takeover=True)
    with ws_connect(url(srv, "/ws/x"), compression="deflate", open_timeout=WAIT) as ws:
        assert "no_context_takeover" not in headers_of(ws)["Sec-WebSocket-Extensions"]
        ws.send("three " * 100)
        assert ws.recv(WAIT) == "three " * 100


def test_deflate_can_be_turned_off(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_per_message_deflate=False)
    with ws_connect(url(srv, "/ws/x"), compression="deflate", open_timeout=WAIT) as ws:
        assert "Sec-WebSocket-Extensions" not in headers_of(ws)


def test_close_codes_both_ways(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT) as ws:
        ws.close(4000, "bye")
    assert wait_for(
        lambda: app.events and app.events[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": "bye"}
    )
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT) as ws:
        ws.send("close-4001")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT)
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "asked")


def test_the_app_refusing_the_handshake(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(srv, "/ws/deny"), open_timeout=WAIT)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(srv, "/ws/custom-deny"), open_timeout=WAIT)
    response = refused.value.response
    assert (response.status_code, response.body, response.headers["www-authenticate"]) == (401, b"go away", "Bearer")
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(url(srv, "/ws/raise"), open_timeout=WAIT)
    assert refused.value.response.status_code == 500


def test_an_app_error_after_accept_closes_with_1011(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT) as ws:
        ws.send("raise")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


def handshake(path: str = "/ws/x", key: bytes = b"", version: bytes = b"13", extra: bytes = b"") -> bytes:
    key = key or base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n"
    )


@pytest.mark.parametrize(
    "raw, status",
    [
        (handshake(key=b"not-base64!"), 400),
        (handshake(key=base64.b64encode(b"short")), 400),
        (handshake(version=b"8"), 426),
        (handshake().replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        (handshake().replace(b"GET ", b"POST ", 1), 400),
        (handshake().replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400),
        (handshake().replace(b"Sec-WebSocket-Key", b"X-Key"), 400),
    ],
    ids=["bad-key", "short-key", "version", "no-connection-upgrade", "post", "http10", "no-key"],
)
def test_hostile_handshakes_get_4xx_and_never_reach_the_app(serve, app, raw, status):
    srv = serve(wsgi_app, mounts={"/ws": app})
    resp = request(srv.port, raw)
    assert resp.status == status, resp.raw
    if status == 426:
        assert resp.reason == b"Upgrade Required" and resp.header(b"sec-websocket-version") == b"13"
    assert app.scopes == []


def test_an_upgrade_outside_every_mount_goes_to_the_wsgi_app(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    resp = request(srv.port, handshake(path="/chat"))
    assert (resp.status, resp.body) == (200, b"wsgi /chat upgrade=websocket")


def test_a_message_over_the_size_limit_closes_with_1009(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_max_size=1000)
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT) as ws:
        ws.send("a" * 999)
        assert ws.recv(WAIT) == "a" * 999
        ws.send("a" * 1001)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_a_deflate_bomb_is_stopped_at_the_size_limit(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_max_size=64 * 1024)
    with ws_connect(url(srv, "/ws/x"), compression="deflate", max_size=None, open_timeout=WAIT) as ws:
        ws.send(b"\x00" * (32 * 1024 * 1024))  # ~32 KiB on the wire, 32 MiB inflated
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert wait_for(lambda: app.ended.is_set())
    # Nothing inflated reached it; the reason is the client's, which echoes ours.
    assert app.events == [{"type": "websocket.disconnect", "code": 1009, "reason": "message over 65536 bytes"}]


def raw_websocket(port: int, path: str = "/ws/x"):
    """A connected socket past the handshake, with a wsproto client to read the server's frames."""
    sock = connect(port)
    client = WSConnection(ConnectionType.CLIENT)
    sock.sendall(client.send(Request(host="t", target=path)))
    while True:
        data = sock.recv(65536)
        assert data, "closed during the handshake"
        client.receive_data(data)
        if any(True for _ in client.events()):
            return sock, client


def test_a_client_that_never_answers_pings_is_closed_with_1011(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_ping_interval=0.2, ws_ping_timeout=0.3)
    sock, client = raw_websocket(srv.port)
    seen: List[Any] = []
    with sock:
        sock.settimeout(WAIT)
        while not any(isinstance(e, CloseConnection) for e in seen):
            data = sock.recv(65536)
            if not data:
                break
            client.receive_data(data)
            seen.extend(client.events())  # never answered: wsproto only queues the pong
    assert any(isinstance(e, Ping) for e in seen)
    closes = [e for e in seen if isinstance(e, CloseConnection)]
    assert closes and closes[0].code == 1011
    assert wait_for(lambda: srv.server.stats.timeouts["ws_ping"] == 1)


def test_a_client_that_answers_pings_stays(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, ws_ping_interval=0.1, ws_ping_timeout=0.2)
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT, ping_interval=None) as ws:
        time.sleep(1.0)  # ten pings, each answered by the client library
        ws.send("still here")
        assert ws.recv(WAIT) == "still here"


def test_send_waits_while_the_client_does_not_read(serve):
    sent: List[int] = []

    async def flood(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        chunk = b"f" * 65536
        try:
            for _ in range(2000):  # 125 MiB if nothing held it back
                await send({"type": "websocket.send", "bytes": chunk})
                sent.append(len(chunk))
        except OSError:
            pass

    srv = serve(wsgi_app, mounts={"/ws": flood}, response_buffer_bytes=0)
    sock, _ = raw_websocket(srv.port)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        time.sleep(0.5)
        early = sum(sent)
        time.sleep(0.3)
        assert sum(sent) == early and early < 16 * 1024 * 1024


def test_a_client_that_sends_faster_than_the_app_reads_is_paused(serve):
    release = threading.Event()

    async def slow(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.get_running_loop().run_in_executor(None, release.wait, WAIT)
        while (await receive())["type"] != "websocket.disconnect":
            pass

    srv = serve(wsgi_app, mounts={"/ws": slow}, input_buffer_bytes=64 * 1024)
    sock, client = raw_websocket(srv.port)
    from wsproto.events import BytesMessage

    frame = client.send(BytesMessage(data=b"m" * 16384))
    sent = 0
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.settimeout(0.5)
        try:
            for _ in range(4000):  # 64 MiB, were the server reading without bound
                sock.sendall(frame)
                sent += len(frame)
        except TimeoutError:
            pass
        assert sent < 16 * 1024 * 1024  # the server stopped reading: the client is blocked
        release.set()


def test_drain_closes_open_websockets_with_1001(loop_name, app):
    from tests.helpers import ServerThread

    srv = ServerThread(wsgi_app, loop=loop_name, mounts={"/ws": app}).start()
    with ws_connect(url(srv, "/ws/x"), open_timeout=WAIT) as ws:
        ws.send("hi")
        assert ws.recv(WAIT) == "hi"
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(WAIT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        stopper.join(WAIT)
    assert app.events[-1]["type"] == "websocket.disconnect" and app.events[-1]["code"] == 1001


def test_websockets_and_http_share_the_port_and_take_no_thread(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app}, threads=1, stats_path="/_stats")
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(ws_connect(url(srv, "/ws/x"), open_timeout=WAIT)) for _ in range(20)]
        assert request(srv.port, get("/plain")).body == b"wsgi /plain upgrade=None"
        stats = json.loads(request(srv.port, get("/_stats")).body)
        assert stats["connections"]["asgi"] == 20
        for ws in sockets:
            ws.send("ping?")
        assert all(ws.recv(WAIT) == "ping?" for ws in sockets)
    assert wait_for(lambda: srv.server.connections == 0)


def test_the_handshake_is_logged_like_a_request(serve, app, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    srv = serve(wsgi_app, mounts={"/ws": app}, access_log=True, access_log_format="%(r)s %(s)s")
    with ws_connect(url(srv, "/ws/logged"), open_timeout=WAIT) as ws:
        ws.send("x")
        ws.recv(WAIT)
    assert wait_for(
        lambda: any(
            r.getMessage() == "GET /ws/logged HTTP/1.1 101" for r in caplog.records if r.name == "asyncwsgi.access"
        )
    )


def test_pipelined_bytes_after_the_handshake_reach_the_session(serve, app):
    srv = serve(wsgi_app, mounts={"/ws": app})
    client = WSConnection(ConnectionType.CLIENT)
    hello = client.send(Request(host="t", target="/ws/x"))
    with connect(srv.port) as sock:
        # A frame sent before the 101 arrives: it waits in h11's buffer and must not be lost.
        from wsproto.events import TextMessage

        sock.sendall(hello + _client_frame(b"early"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 101
        client.receive_data(resp.raw)
        list(client.events())
        client.receive_data(reader.buf)
        deadline = time.monotonic() + WAIT
        texts: List[str] = []
        sock.settimeout(WAIT)
        while not texts and time.monotonic() < deadline:
            texts = [e.data for e in client.events() if isinstance(e, TextMessage)]
            if not texts:
                client.receive_data(sock.recv(65536))
        assert texts == ["early"]


def _client_frame(payload: bytes) -> bytes:
    """A masked, final text frame, as a client sends it (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def test_without_wsproto_an_upgrade_to_a_mount_gets_501(serve, app, monkeypatch, caplog):
    import logging

    from asyncwsgi.server.cycle import websocket

    caplog.set_level(logging.INFO, logger="asyncwsgi.error")
    monkeypatch.setattr(websocket, "wsproto", None)
    srv = serve(wsgi_app, mounts={"/ws": app})
    assert request(srv.port, handshake()).status == 501
    assert wait_for(lambda: "pip install 'asyncwsgi[ws]'" in caplog.text)  # the log says what to do
    assert app.scopes == []


@pytest.mark.parametrize(
    "frame, code",
    [
        (b"\x81\x05hello", 1002),  # not masked: a client must mask (RFC 6455 5.1)
        (None, 1007),  # a text frame that is not UTF-8
    ],
    ids=["unmasked", "bad-utf8"],
)
def test_a_malformed_frame_closes_with_the_protocol_error_code(serve, app, frame, code):
    srv = serve(wsgi_app, mounts={"/ws": app})
    sock, client = raw_websocket(srv.port)
    with sock:
        sock.sendall(frame if frame is not None else _client_frame(b"\xff\xfe"))
        sock.settimeout(WAIT)
        closes: List[CloseConnection] = []
        while not closes:
            data = sock.recv(65536)
            if not data:
                break
            client.receive_data(data)
            closes = [e for e in client.events() if isinstance(e, CloseConnection)]
        assert closes and closes[0].code == code
        assert Reader(sock).closed()  # then the server closes the connection
    assert wait_for(lambda: app.events and app.events[-1]["type"] == "websocket.disconnect")
    assert app.events[-1]["code"] == code


def test_accept_headers_that_would_split_the_response_get_500(serve):
    async def injects(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept", "headers": [(b"x-note", b"a\r\nInjected: 1")]})

    srv = serve(wsgi_app, mounts={"/ws": injects})
    resp = request(srv.port, handshake())
    assert resp.status == 500 and resp.header(b"injected") is None
