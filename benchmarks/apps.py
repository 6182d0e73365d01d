"""Apps the benchmarks serve; the same callables for every server."""

from __future__ import annotations

import time

_HELLO = b"Hello, world!"
_MIB = b"d" * (1024 * 1024)


def hello(environ, start_response):
    """13-byte body, the classic."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [_HELLO]


def download(environ, start_response):
    """1 MiB streamed in 64 KiB chunks (a generator, as file-serving apps do)."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(_MIB)))])
    view = memoryview(_MIB)
    return (bytes(view[i : i + 65536]) for i in range(0, len(_MIB), 65536))


def download16(environ, start_response):
    """16 MiB streamed in 64 KiB chunks, with a Content-Length: more than any buffer in memory."""
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(16 * len(_MIB)))])
    view = memoryview(_MIB)
    return (bytes(view[i : i + 65536]) for _ in range(16) for i in range(0, len(_MIB), 65536))


def stream(environ, start_response):
    """1 MiB as 16 yields of 64 KiB with no Content-Length (chunked on HTTP/1.1), as a generated
    export or a proxied download is."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    view = memoryview(_MIB)
    return (bytes(view[i : i + 65536]) for i in range(0, len(_MIB), 65536))


def upload(environ, start_response):
    """Reads the whole body in 64 KiB reads and answers with its length."""
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    size = 0
    while size < length:
        chunk = stream.read(min(65536, length - size))
        if not chunk:
            break
        size += len(chunk)
    body = str(size).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def blocking(environ, start_response):
    """Holds its thread 10 ms, like a view waiting on a database."""
    time.sleep(0.010)
    return hello(environ, start_response)


def storm(environ, start_response):
    """``/upload`` reads the body, ``/download`` streams 1 MiB, ``/download16`` 16 MiB, anything
    else is hello (benchmarks/storm.py)."""
    path = environ.get("PATH_INFO")
    if path == "/upload":
        return upload(environ, start_response)
    if path == "/download":
        return download(environ, start_response)
    if path == "/download16":
        return download16(environ, start_response)
    return hello(environ, start_response)


def hello_or_upload(environ, start_response):
    """``/upload`` reads the body (``upload``); anything else is ``hello`` (benchmarks/reset_flood.py)."""
    if environ.get("PATH_INFO") == "/upload":
        return upload(environ, start_response)
    return hello(environ, start_response)
