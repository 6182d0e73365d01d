"""Small WSGI apps, each exercising one behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from typing import Any, Dict


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]


def hello_factory():
    return hello


class Nested:
    class Inner:
        app = staticmethod(hello)


def echo(environ, start_response):
    """Answer with the request body, read in one read()."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def environ_dump(environ, start_response):
    """Answer with the str-valued CGI keys of the environ, as JSON."""
    data: Dict[str, Any] = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        data[key] = environ[key]
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def stream(environ, start_response):
    """Three chunks from a generator, so the length is unknown (chunked on 1.1)."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"one,"
        yield b""
        yield b"two,"
        yield b"three"

    return body()


def no_body(environ, start_response):
    start_response("204 No Content", [])
    return []


def path_echo(environ, start_response):
    body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} ?{environ['QUERY_STRING']}".encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def ignores_body(environ, start_response):
    """Answers without reading the request body."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ignored"]


def boom(environ, start_response):
    raise RuntimeError("boom before start_response")


def boom_after_headers(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"partial"
        raise RuntimeError("boom after headers")

    return body()


def bad_header(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: pwned=1")])
    return [b"never"]


def bad_status(environ, start_response):
    start_response("200 OK\r\nX-Evil: 1", [])
    return [b"never"]


def hop_by_hop(environ, start_response):
    start_response("200 OK", [("Transfer-Encoding", "chunked")])
    return [b"never"]


def app_closes(environ, start_response):
    start_response("200 OK", [("Connection", "close"), ("Content-Type", "text/plain")])
    return [b"bye"]


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written,")
    return [b"returned"]


def short_content_length(environ, start_response):
    start_response("200 OK", [("Content-Length", "100")])
    return iter([b"only ten b"])


def exc_info_replace(environ, start_response):
    """Calls start_response, fails, then replaces the headers via exc_info (allowed: nothing sent)."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("oops")
    except ValueError:
        import sys

        start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced"]


def slow(environ, start_response):
    delay = float(environ.get("QUERY_STRING") or "0.2")
    time.sleep(delay)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


class Tracker:
    """An app whose iterable records close() and how far the app got; for disconnect tests."""

    def __init__(self, chunk: bytes = b"x" * 65536, chunks: int = 10_000) -> None:
        self.chunk = chunk
        self.chunks = chunks
        self.produced = 0
        self.closed = threading.Event()
        self.started = threading.Event()

    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        tracker = self

        class Body:
            def __iter__(self):
                tracker.started.set()
                for _ in range(tracker.chunks):
                    tracker.produced += 1
                    yield tracker.chunk

            def close(self):
                tracker.closed.set()

        return Body()


def announced_slow(environ, start_response):
    """Like ``slow``, but says on wsgi.errors when it has started, so tests can wait for that."""
    errors = environ["wsgi.errors"]
    errors.write(f"app started {environ['QUERY_STRING']}\n")
    errors.flush()
    return slow(environ, start_response)


def echo_sized_reads(environ, start_response):
    """Echo using only read(size), as wsgiref.validate demands of apps."""
    stream = environ["wsgi.input"]
    parts = []
    while True:
        chunk = stream.read(4096)
        if not chunk:
            break
        parts.append(chunk)
    body = b"".join(parts)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


def stuck_or_pid(environ, start_response):
    """``/stuck`` never comes back within a test (60 s); anything else answers the process's pid."""
    if environ["PATH_INFO"] == "/stuck":
        time.sleep(60)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def spin_or_ok(environ, start_response):
    """``/spin`` loops in pure Python for 30 s (a stuck request that --interrupt-on-timeout can
    stop); anything else answers ok."""
    if environ["PATH_INFO"] == "/spin":
        until = time.monotonic() + 30
        while time.monotonic() < until:
            pass
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def upload_or_download(environ, start_response):
    """POST: the body's length and SHA-256, as ``LENGTH HEX``. GET ``/?N``: N bytes of a pattern
    whose every 8-byte block says where it is, in 64 KiB yields (chunked)."""
    if environ["REQUEST_METHOD"] == "POST":
        digest = hashlib.sha256()
        size = 0
        while True:
            piece = environ["wsgi.input"].read(65536)
            if not piece:
                break
            digest.update(piece)
            size += len(piece)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{size} {digest.hexdigest()}".encode()]
    size = int(environ["QUERY_STRING"] or "0")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return _pattern_pieces(size)


def pattern(size: int, start: int = 0) -> bytes:
    """``size`` bytes from ``start`` (multiples of 8) of a pattern whose block i is i, big-endian."""
    return b"".join(i.to_bytes(8, "big") for i in range(start // 8, (start + size) // 8))


def _pattern_pieces(size: int):
    for start in range(0, size, 65536):
        yield pattern(min(65536, size - start), start)
