"""One app with the mix of requests the recycling and reload tests run: fast (answers the pid),
slow, upload, download, a stream; and stuck, for the --request-timeout recycling test."""

from __future__ import annotations

import os
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(0.05)
        body = b"slow"
    elif path == "/upload":
        body = str(len(environ["wsgi.input"].read())).encode()
    elif path == "/download":
        body = b"d" * (256 * 1024)
    elif path == "/stream":
        # Its head goes out before its end: a drain that begins in between finds a response
        # that has already promised to keep the connection.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    elif path == "/stuck":
        time.sleep(60)  # never comes back within a test
        body = b"late"
    else:
        body = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _stream():
    yield b"s" * 1000
    time.sleep(0.01)
    yield b"s" * 1000
