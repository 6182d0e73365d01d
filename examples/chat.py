"""A Flask site with a live chat: a Starlette WebSocket app mounted at /ws, one process, one port.

    asyncwsgi examples.chat:app --mount /ws=examples.chat:chat_app

Open http://127.0.0.1:8000/ in two browser tabs and type. A plain Flask view can talk to the
chat too (a form post, a cron job, a webhook)::

    curl -d 'text=hello from Flask' http://127.0.0.1:8000/publish

Flask runs on the server's threads; the chat runs on its event loop, where a thousand open
WebSockets cost no thread. The only bridge is ``environ["asyncwsgi.run_coroutine"]``: the Flask
view hands ``broadcast()`` to the loop and waits for its answer. ``clients`` is touched only on
the loop, so it needs no lock.
"""

from __future__ import annotations

from typing import Any, Dict, Set

from flask import Flask, request
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# --- the chat: ASGI, on the event loop ----------------------------------------------------------

clients: Set[WebSocket] = set()  # [loop]


async def broadcast(text: str) -> int:
    """Send ``text`` to every open socket; how many got it. [loop]"""
    delivered = 0
    for websocket in list(clients):
        try:
            await websocket.send_text(text)
            delivered += 1
        except Exception:  # a client that left mid-send
            clients.discard(websocket)
    return delivered


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    clients.add(websocket)
    try:
        while True:
            await broadcast(await websocket.receive_text())
    except WebSocketDisconnect:
        pass
    finally:
        clients.discard(websocket)


chat_app = Starlette(routes=[WebSocketRoute("/chat", chat)])

# --- the site: WSGI, on the threads --------------------------------------------------------------

app = Flask(__name__)

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>asyncwsgi chat</title>
<p id="status">connecting...</p>
<form id="say"><input id="text" autocomplete="off" autofocus><button>Send</button></form>
<ul id="messages"></ul>
<script>
const scheme = location.protocol === "https:" ? "wss" : "ws";
const socket = new WebSocket(`${scheme}://${location.host}/ws/chat`);
socket.onopen = () => { document.getElementById("status").textContent = "connected"; };
socket.onclose = () => { document.getElementById("status").textContent = "disconnected"; };
socket.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;
  document.getElementById("messages").appendChild(item);
};
document.getElementById("say").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("text");
  socket.send(input.value);
  input.value = "";
};
</script>
"""


@app.get("/")
def page() -> str:
    return PAGE


@app.post("/publish")
def publish() -> Dict[str, Any]:
    """Publish to every chat client from a plain Flask view. [thread]"""
    text = request.form.get("text") or request.get_data(as_text=True)
    delivered = request.environ["asyncwsgi.run_coroutine"](broadcast(text), timeout=5)
    return {"delivered": delivered}
