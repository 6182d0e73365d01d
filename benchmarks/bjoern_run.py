"""Serve a WSGI app with bjoern (no CLI of its own): python benchmarks/bjoern_run.py module:attr PORT

bjoern is a single-threaded C server on libev: a reference point for raw speed, not a peer
with a thread pool (an app that blocks stalls every connection).
"""

import importlib
import sys

import bjoern


def main() -> None:
    target, port = sys.argv[1], int(sys.argv[2])
    module, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module), attr)
    bjoern.run(app, "127.0.0.1", port)


if __name__ == "__main__":
    main()
