"""The examples the README and docs show really work."""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import httpx
import pytest

from examples import embed


@pytest.mark.asyncio
async def test_embed_example_serves_both_services():
    stop = asyncio.Event()
    results: Dict[str, Any] = {}

    async def started(web, echo):
        web_port = web.sockets[0].getsockname()[1]
        echo_port = echo.sockets[0].getsockname()[1]
        async with httpx.AsyncClient(timeout=10) as client:
            results["web"] = (await client.get(f"http://127.0.0.1:{web_port}/")).text
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_port)
        writer.write(b"ping\n")
        results["echo"] = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        await writer.wait_closed()
        stop.set()

    await asyncio.wait_for(embed.run(0, 0, stop=stop, started=started), 15)
    assert results == {"web": "Hello, world!", "echo": b"ping\n"}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_chat_example_a_flask_post_reaches_every_websocket(loop):
    """examples/chat.py as its docstring runs it: the command, Flask and a mounted Starlette chat."""
    from websockets.sync.client import connect as ws_connect

    from tests.proc import CLIServer

    with CLIServer("examples.chat:app", "--mount", "/ws=examples.chat:chat_app", "--port", "0", "--loop", loop) as srv:
        srv.wait_listening()
        base = f"http://127.0.0.1:{srv.port}"
        assert "new WebSocket" in httpx.get(base + "/", timeout=10).text
        with (
            ws_connect(f"ws://127.0.0.1:{srv.port}/ws/chat", open_timeout=10) as one,
            ws_connect(f"ws://127.0.0.1:{srv.port}/ws/chat", open_timeout=10) as two,
        ):
            one.send("from a browser")
            assert (one.recv(10), two.recv(10)) == ("from a browser", "from a browser")
            answer = httpx.post(base + "/publish", data={"text": "from Flask"}, timeout=10)
            assert answer.json() == {"delivered": 2}
            assert (one.recv(10), two.recv(10)) == ("from Flask", "from Flask")
        srv.signal()
        assert srv.wait() == 0, srv.output()


def test_django_site_example_serves_its_admin_and_its_static_files(tmp_path):
    """examples/django_site.py as its docstring runs it: collectstatic, then --static."""
    import os
    import re
    import subprocess
    import sys

    from tests.proc import ROOT, CLIServer

    env = {"DJANGO_STATIC_ROOT": str(tmp_path / "staticfiles")}
    collect = [sys.executable, "-m", "examples.django_site", "collectstatic", "--noinput"]
    done = subprocess.run(collect, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with CLIServer(
        "examples.django_site:app", "--static", f"/static={tmp_path / 'staticfiles'}", "--port", "0", env=env
    ) as srv:
        srv.wait_listening()
        base = f"http://127.0.0.1:{srv.port}"
        page = httpx.get(base + "/admin/login/", timeout=10)
        assert page.status_code == 200 and "Django administration" in page.text
        links = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert any(link.endswith(".css") for link in links)
        for link in links:
            answer = httpx.get(base + link, timeout=10)
            assert answer.status_code == 200 and answer.content, link
            assert answer.headers["cache-control"] == "public, max-age=31536000, immutable", link
        srv.signal()
        assert srv.wait() == 0, srv.output()
