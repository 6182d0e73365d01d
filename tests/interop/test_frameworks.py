"""Real Flask and Django apps served over real sockets."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.helpers import WAIT, Reader, connect


@pytest.fixture(params=["flask", "django"])
def framework_app(request):
    if request.param == "flask":
        from tests.apps.flask_app import app
    else:
        from tests.apps.django_app import app
    return app


def test_routing_json_upload_stream_404(serve, framework_app):
    srv = serve(framework_app)
    with httpx.Client(base_url=srv.url, timeout=WAIT) as client:
        r = client.get("/hello/world")
        assert (r.status_code, r.text) == (200, "hello world")

        r = client.post("/json", json={"items": [1, 2, 3], "name": "x"})
        assert r.status_code == 200
        assert r.json() == {"received": {"items": [1, 2, 3], "name": "x"}, "count": 3}

        payload = b"HELLO" + bytes(range(256)) * 2000  # ~500 KiB, binary
        r = client.post("/upload", files={"file": ("data.bin", payload)}, data={"note": "n\u00e9"})
        assert r.status_code == 200
        assert r.json() == {"name": "data.bin", "size": len(payload), "field": "n\u00e9", "head": "HELLO"}

        r = client.get("/stream")
        assert r.text == "part0;part1;part2;part3;part4;"
        assert r.headers.get("transfer-encoding") == "chunked"

        r = client.get("/no/such/page")
        assert r.status_code == 404


def test_chunked_json_post_reaches_flask(serve):
    """Werkzeug honours wsgi.input_terminated and reads a chunked body to its end.

    (Django reads only CONTENT_LENGTH bytes, so a chunked body looks empty to it; that is
    Django's documented limitation, and we do not buffer bodies to hide it.)
    """
    from tests.apps.flask_app import app

    srv = serve(app)
    body = b'{"items": ["a", "b"]}'
    with connect(srv.port) as sock:
        sock.sendall(
            b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        resp = Reader(sock).response()
    assert resp.status == 200
    assert json.loads(resp.body) == {"received": {"items": ["a", "b"]}, "count": 2}


def test_starlette_mounted_beside_flask_and_django(serve, framework_app):
    """The WSGI framework keeps its routes; Starlette gets its prefix: HTTP, SSE, WebSocket."""
    from websockets.sync.client import connect as ws_connect

    from tests.apps.starlette_app import app as starlette_app

    srv = serve(framework_app, mounts={"/async": starlette_app})
    with httpx.Client(base_url=srv.url, timeout=WAIT) as client:
        assert client.get("/hello/world").text == "hello world"  # the WSGI app
        r = client.get("/async/hello/there")
        assert (r.status_code, r.text) == (200, "asgi hello there /async/hello/there")
        r = client.post("/async/json", json={"a": [1, 2]})
        assert r.json() == {"received": {"a": [1, 2]}, "started": "yes"}  # lifespan state
        r = client.get("/async/stream")
        assert r.text == "part0;part1;part2;part3;part4;" and r.headers["transfer-encoding"] == "chunked"
        with client.stream("GET", "/async/events") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert [line for line in r.iter_lines() if line] == ["data: tick 0", "data: tick 1", "data: tick 2"]
        assert client.get("/async/no/such").status_code == 404  # Starlette's own 404
    with ws_connect(srv.url.replace("http", "ws") + "/async/socket", open_timeout=WAIT) as ws:
        ws.send("hi")
        assert ws.recv(WAIT) == "echo hi"
