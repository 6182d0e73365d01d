"""Flask views every server serves: a JSON view, and a templated page of 50 rows behind 2 ms of
simulated database time (``/page``, benchmarks/page_data.py)."""

from pathlib import Path

from flask import Flask, jsonify, render_template

from benchmarks.page_data import context

app = Flask(__name__, template_folder=str(Path(__file__).parent / "templates"))


@app.get("/")
def index():
    return jsonify(message="Hello, world!", items=list(range(10)))


@app.get("/page")
def page():
    return render_template("page.html", **context())
