"""ASGI servers serve the same WSGI apps through a2wsgi, with 8 threads like the others.

BENCH_APP=benchmarks.apps:hello uvicorn --factory benchmarks.asgi:make
"""

import importlib
import os

from a2wsgi import WSGIMiddleware


def make():
    module, _, attr = os.environ["BENCH_APP"].partition(":")
    return WSGIMiddleware(getattr(importlib.import_module(module), attr), workers=8)
