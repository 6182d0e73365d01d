"""An app whose import takes 1.5 s, like a large Django project's: for reload ordering tests."""

import os
import time

time.sleep(1.5)


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
