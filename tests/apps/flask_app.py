"""A small Flask app: routing, JSON POST, form upload, streaming, 404."""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/hello/<name>")
def hello(name: str):
    return f"hello {name}"


@app.post("/json")
def json_echo():
    data = request.get_json()
    return jsonify(received=data, count=len(data["items"]))


@app.post("/upload")
def upload():
    f = request.files["file"]
    content = f.read()
    return jsonify(name=f.filename, size=len(content), field=request.form["note"], head=content[:5].decode())


@app.get("/stream")
def stream():
    def generate():
        for i in range(5):
            yield f"part{i};"

    return Response(generate(), mimetype="text/plain")
