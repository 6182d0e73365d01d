"""Mounted ASGI apps beside the WSGI app, end to end over real sockets, on both loops:
routing, the scope, the body both ways with back-pressure, disconnects, errors, deadlines,
lifespan, and a WSGI view running a coroutine on the server's loop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import Any, Dict, List

import pytest

from asyncwsgi import ConfigError, start_server
from asyncwsgi.errors import StartupFailed
from tests.helpers import WAIT, Reader, ServerThread, connect, get, request, wait_for


def wsgi_app(environ, start_response):
    body = f"wsgi {environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def http_only(app: Any) -> Any:
    """A test app that takes no part in lifespan (it returns at once, as the spec allows)."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            await app(scope, receive, send)

    return wrapped


@http_only
async def echo_scope(scope, receive, send):
    """Answers with the scope's routing fields and the whole request body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = {
        "path": scope["path"],
        "root_path": scope["root_path"],
        "raw_path": scope["raw_path"].decode(),
        "query": scope["query_string"].decode(),
        "method": scope["method"],
        "client": scope["client"][0] if scope["client"] else None,
        "scheme": scope["scheme"],
        "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        "body_length": len(body),
    }
    data = json.dumps(answer).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})


def post(path: str, body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


def test_requests_under_a_prefix_go_to_the_asgi_app_and_the_rest_to_wsgi(serve):
    srv = serve(wsgi_app, mounts={"/api": echo_scope, "/api/v2": echo_scope})
    assert request(srv.port, get("/x")).body == b"wsgi  /x"
    assert request(srv.port, get("/apix")).body == b"wsgi  /apix"  # not on a segment boundary
    seen = json.loads(request(srv.port, get("/api/users?id=7")).body)
    assert (seen["root_path"], seen["path"], seen["query"]) == ("/api", "/api/users", "id=7")
    seen = json.loads(request(srv.port, get("/api/v2/users")).body)
    assert seen["root_path"] == "/api/v2"  # the longest prefix wins
    seen = json.loads(request(srv.port, get("/api/caf%C3%A9")).body)
    assert (seen["path"], seen["raw_path"]) == ("/api/café", "/api/caf%C3%A9")


def test_root_path_comes_before_the_mount_prefix(serve):
    srv = serve(wsgi_app, mounts={"/api": echo_scope}, root_path="/site")
    seen = json.loads(request(srv.port, get("/site/api/a")).body)
    assert (seen["root_path"], seen["path"]) == ("/site/api", "/site/api/a")
    assert request(srv.port, get("/site/b")).body == b"wsgi /site /b"


def test_proxy_headers_reach_the_scope_as_they_reach_the_environ(serve):
    srv = serve(wsgi_app, mounts={"/api": echo_scope}, proxy_headers=True, forwarded_allow_ips="127.0.0.1")
    extra = b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
    seen = json.loads(request(srv.port, get("/api", extra=extra)).body)
    assert (seen["client"], seen["scheme"]) == ("203.0.113.7", "https")


def test_a_large_body_is_streamed_and_keep_alive_goes_on(serve):
    srv = serve(wsgi_app, mounts={"/api": echo_scope})
    body = b"x" * (3 * 1024 * 1024)
    with connect(srv.port) as sock:
        sock.sendall(post("/api/upload", body))
        reader = Reader(sock)
        assert json.loads(reader.response().body)["body_length"] == len(body)
        sock.sendall(get("/after"))  # the same connection serves the WSGI app next
        assert reader.response().body == b"wsgi  /after"


def test_chunked_body(serve):
    srv = serve(wsgi_app, mounts={"/api": echo_scope})
    raw = b"POST /api HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n"
    assert json.loads(request(srv.port, raw).body)["body_length"] == 8


def test_a_slow_reading_app_stops_the_server_reading_the_socket(serve):
    release = threading.Event()
    progress: List[int] = []

    @http_only
    async def slow(scope, receive, send):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, release.wait, WAIT)
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        progress.append(total)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % total})

    limit = 256 * 1024
    srv = serve(wsgi_app, mounts={"/api": slow}, input_buffer_bytes=limit)
    body = b"y" * (16 * 1024 * 1024)
    with connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sender = threading.Thread(target=lambda: sock.sendall(post("/api", body)), daemon=True)
        sender.start()
        time.sleep(0.5)  # give it time to overfill, were there no back-pressure

        def held() -> int:
            exchange = next(iter(srv.server._ctx.connections)).cycle
            return int(exchange._held)  # bytes waiting for the app's receive()

        assert held() <= limit + 256 * 1024  # the limit plus at most one read
        assert sender.is_alive()  # the client is blocked: its window is full
        release.set()
        assert Reader(sock).response().body == b"%d" % len(body)
        sender.join(WAIT)


def test_100_continue_is_sent_at_the_first_receive_and_not_if_the_app_refuses(serve):
    @http_only
    async def refuse_or_read(scope, receive, send):
        if scope["path"].endswith("/refuse"):
            await send({"type": "http.response.start", "status": 413, "headers": []})
            await send({"type": "http.response.body", "body": b"too big"})
            return
        await echo_scope(scope, receive, send)

    srv = serve(wsgi_app, mounts={"/api": refuse_or_read})
    head = b"POST /api/refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with connect(srv.port) as sock:
        sock.sendall(head)
        resp = Reader(sock).response()
        assert resp.status == 413 and resp.header(b"connection") == b"close"
    head = b"POST /api/read HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    with connect(srv.port) as sock:
        sock.sendall(head)
        reader = Reader(sock)
        assert reader.response().status == 100
        sock.sendall(b"hello")
        assert json.loads(reader.response().body)["body_length"] == 5


def test_the_app_hears_http_disconnect_when_the_client_goes(serve):
    heard: List[str] = []
    started = threading.Event()

    @http_only
    async def waits(scope, receive, send):
        await receive()  # the (empty) body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        started.set()
        heard.append((await receive())["type"])

    srv = serve(wsgi_app, mounts={"/events": waits})
    with connect(srv.port) as sock:
        sock.sendall(get("/events"))
        assert started.wait(WAIT)
    assert wait_for(lambda: heard == ["http.disconnect"])


def test_a_stream_to_a_reader_that_stops_makes_send_wait(serve):
    sent: List[int] = []

    @http_only
    async def stream(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"z" * 65536
        for _ in range(2000):  # 125 MiB if nothing held it back
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent.append(len(chunk))
        await send({"type": "http.response.body", "body": b""})

    srv = serve(wsgi_app, mounts={"/s": stream}, response_buffer_bytes=0)
    with connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(get("/s"))
        time.sleep(0.5)
        early = sum(sent)
        time.sleep(0.3)
        assert sum(sent) == early  # blocked in send(), not buffering
        assert early < 16 * 1024 * 1024
    # The client left: the app's next send raises and its task ends; the connection is gone.
    assert wait_for(lambda: srv.server.connections == 0)


def test_app_errors(serve, caplog):
    @http_only
    async def failing(scope, receive, send):
        path = scope["path"]
        if path == "/a/before":
            raise RuntimeError("boom before")
        if path == "/a/nothing":
            return
        if path == "/a/badheader":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\nb")]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("boom after")

    srv = serve(wsgi_app, mounts={"/a": failing})
    with caplog.at_level(logging.ERROR, logger="asyncwsgi.error"):
        for path in ("/a/before", "/a/nothing", "/a/badheader"):
            with connect(srv.port) as sock:
                sock.sendall(get(path) + get("/ok"))
                reader = Reader(sock)
                assert reader.response().status == 500, path
                assert reader.response().body == b"wsgi  /ok"  # the connection goes on
        with connect(srv.port) as sock:
            sock.sendall(get("/a/after"))
            reader = Reader(sock)
            with pytest.raises(EOFError):
                reader.response()  # cut: never mistaken for a whole response
    messages = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert "boom before" in messages and "boom after" in messages
    assert "returned without a response" in messages
    assert "invalid characters" in messages


def test_content_length_and_chunked_framing(serve):
    @http_only
    async def app(scope, receive, send):
        if scope["path"] == "/f/one":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"whole"})
        elif scope["path"] == "/f/short":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
            await send({"type": "http.response.body", "body": b"short"})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await send({"type": "http.response.body", "body": b"b"})

    srv = serve(wsgi_app, mounts={"/f": app})
    resp = request(srv.port, get("/f/one"))
    assert resp.header(b"content-length") == b"5" and resp.body == b"whole"
    resp = request(srv.port, get("/f/many"))
    assert resp.header(b"transfer-encoding") == b"chunked" and resp.body == b"ab"
    head = request(srv.port, b"HEAD /f/one HTTP/1.1\r\nHost: t\r\n\r\n", head_request=True)
    assert head.header(b"content-length") == b"5" and head.body == b""
    with connect(srv.port) as sock:  # fewer bytes than its Content-Length: the connection closes
        sock.sendall(get("/f/short"))
        with pytest.raises(EOFError):
            Reader(sock).response()


def test_pipelined_requests_to_both_apps_are_answered_in_order(serve):
    @http_only
    async def slow(scope, receive, send):
        await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"asgi"})

    srv = serve(wsgi_app, mounts={"/slow": slow})
    with connect(srv.port) as sock:
        sock.sendall(get("/slow") + get("/w") + get("/slow"))
        reader = Reader(sock)
        assert [reader.response().body for _ in range(3)] == [b"asgi", b"wsgi  /w", b"asgi"]


def test_a_body_over_the_limit_gets_413_when_the_app_lets_the_error_escape(serve):
    srv = serve(wsgi_app, mounts={"/api": echo_scope}, max_body_bytes=1000)
    chunk = b"x" * 800
    raw = b"POST /api HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 2 + b"0\r\n\r\n"
    resp = request(srv.port, raw)
    assert resp.status == 413 and resp.header(b"connection") == b"close"


def test_request_timeout_answers_504_and_cancels_the_app(serve):
    cancelled = threading.Event()

    @http_only
    async def sleeps(scope, receive, send):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    srv = serve(wsgi_app, mounts={"/z": sleeps}, request_timeout=0.3)
    resp = request(srv.port, get("/z"))
    assert (resp.status, resp.reason) == (504, b"Gateway Timeout")
    assert cancelled.wait(WAIT)
    assert srv.server.stats.responses["5xx"] == 1  # the refusal, counted once
    assert srv.server.stats.timeouts["request"] == 1


def test_asgi_requests_are_logged_and_counted(serve, caplog):
    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    srv = serve(wsgi_app, mounts={"/api": echo_scope}, access_log=True, access_log_format="json")
    body = b"x" * 100
    assert request(srv.port, post("/api/logged", body)).status == 200

    def lines() -> List[Dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == "asyncwsgi.access"]

    assert wait_for(lines)
    line = lines()[-1]
    assert (line["method"], line["path"], line["status"], line["bytes_in"]) == ("POST", "/api/logged", 200, 100)
    assert srv.server.stats.responses["2xx"] == 1


def test_stats_show_asgi_requests_in_flight(serve):
    gate = threading.Event()

    @http_only
    async def held(scope, receive, send):
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, WAIT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    srv = serve(wsgi_app, mounts={"/held": held}, stats_path="/_stats", threads=1)
    socks = [connect(srv.port) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(get("/held"))

        def asgi_count() -> int:
            return int(json.loads(request(srv.port, get("/_stats")).body)["connections"]["asgi"])

        assert wait_for(lambda: asgi_count() == 3)
        stats = json.loads(request(srv.port, get("/_stats?stacks=1")).body)
        flying = [r for r in stats["in_flight"] if r.get("asgi") == "/held"]
        assert len(flying) == 3 and all(r["path"] == "/held" and r["thread"] is None for r in flying)
        assert all("in held" in r["stack"] for r in flying)  # where its coroutine waits
        assert request(srv.port, get("/w")).body == b"wsgi  /w"  # the one thread is free
        gate.set()
        assert all(Reader(sock).response().body == b"done" for sock in socks)
    finally:
        gate.set()
        for sock in socks:
            sock.close()


def test_lifespan_runs_before_serving_and_after_the_drain_in_mount_order(loop_name):
    events: List[str] = []

    def app_for(name: str) -> Any:
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    events.append(f"{name} {message['type']}")
                    if message["type"] == "lifespan.startup":
                        scope["state"]["name"] = name
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            body = scope["state"]["name"].encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        return app

    srv = ServerThread(wsgi_app, loop=loop_name, mounts={"/b": app_for("b"), "/a": app_for("a")}).start()
    try:
        assert events == ["b lifespan.startup", "a lifespan.startup"]
        assert request(srv.port, get("/a/x")).body == b"a"  # the state reached the request scope
    finally:
        srv.stop()
    assert events[2:] == ["b lifespan.shutdown", "a lifespan.shutdown"]


def test_a_failed_lifespan_startup_stops_the_server_and_frees_its_port(loop_name):
    async def refuses(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})

    srv = ServerThread(wsgi_app, loop=loop_name, mounts={"/a": refuses})
    with pytest.raises(StartupFailed, match="database unreachable"):
        srv.start()
    srv.loop.close()


def test_bad_mounts_are_refused_at_start(loop_name):
    async def start(**options: Any) -> None:
        await start_server(wsgi_app, port=0, **options)

    cases: List[Any] = [
        ({"mounts": {"/a": wsgi_app}}, "not an ASGI 3 application"),
        ({"mounts": {"a": echo_scope}}, "must start with '/'"),
        ({"mount": ("/a=x:y",)}, "mounts="),
    ]
    for options, match in cases:
        with pytest.raises(ConfigError, match=match):
            asyncio.run(start(**options))


def test_a_wsgi_view_runs_a_coroutine_on_the_servers_loop(serve):
    published: List[str] = []
    loops: List[Any] = []

    async def publish(message: str) -> int:
        loops.append(asyncio.get_running_loop())
        published.append(message)
        return len(published)

    async def fails() -> None:
        raise LookupError("no such room")

    def view(environ, start_response):
        run = environ["asyncwsgi.run_coroutine"]
        count = run(publish("hello"))
        try:
            run(fails())
            error = "none"
        except LookupError as exc:
            error = str(exc)
        try:
            run(asyncio.sleep(5), timeout=0.1)
            timed = "no"
        except TimeoutError:
            timed = "yes"
        body = json.dumps({"count": count, "error": error, "timed_out": timed}).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    srv = serve(view)
    assert json.loads(request(srv.port, get("/")).body) == {"count": 1, "error": "no such room", "timed_out": "yes"}
    assert loops == [srv.loop]


def test_a_coroutine_run_for_a_client_that_leaves_is_cancelled(serve):
    cancelled = threading.Event()
    started = threading.Event()
    outcome: Dict[str, str] = {}

    async def waits_forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def view(environ, start_response):
        try:
            environ["asyncwsgi.run_coroutine"](waits_forever())
        except ConnectionError as exc:
            outcome["error"] = type(exc).__name__
        start_response("200 OK", [])
        return [b""]

    srv = serve(view)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        assert started.wait(WAIT)
    assert cancelled.wait(WAIT)
    assert wait_for(lambda: outcome.get("error") == "ClientDisconnected")


def test_run_coroutine_on_the_loop_thread_is_refused(serve):
    """An ASGI app on the loop must await; the WSGI helper would deadlock there."""
    seen: List[str] = []

    def view(environ, start_response):
        helper = environ["asyncwsgi.run_coroutine"]

        async def on_loop() -> None:
            coro = asyncio.sleep(0)
            try:
                helper(coro)
            except RuntimeError as exc:
                seen.append(str(exc))

        environ["asyncwsgi.run_coroutine"](on_loop())
        start_response("200 OK", [])
        return [b""]

    srv = serve(view)
    request(srv.port, get("/"))
    assert seen and "event loop's thread" in seen[0]
