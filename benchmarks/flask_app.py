"""A Flask JSON view, served by every server in the framework scenario."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(message="Hello, world!", items=list(range(10)))
