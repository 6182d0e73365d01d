"""Large-transfer apps for memory tests: sizes come from the query string."""

from __future__ import annotations

import time

_CHUNK = b"d" * (1024 * 1024)  # allocated once, so the app itself holds no growing memory


def download(environ, start_response):
    mib = int(environ.get("QUERY_STRING") or "64")
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(mib << 20))])
    return (_CHUNK for _ in range(mib))


def slow_upload(environ, start_response):
    """Reads the body 64 KiB at a time, pausing, and answers with the byte count."""
    stream = environ["wsgi.input"]
    size = 0
    reads = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        size += len(chunk)
        reads += 1
        if reads % 16 == 0:
            time.sleep(0.001)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(size).encode()]
