"""Apps for benchmarks/static.py: hello world, and hello world with WhiteNoise in front.

``BENCH_STATIC_DIR`` names the directory WhiteNoise serves under ``/static/`` (static.py makes it).
"""

from __future__ import annotations

import os

from benchmarks.apps import hello


def whitenoise():
    """WhiteNoise as its docs set it up for a WSGI app: files scanned once at start."""
    from whitenoise import WhiteNoise

    return WhiteNoise(hello, root=os.environ["BENCH_STATIC_DIR"], prefix="static/")


application = whitenoise() if os.environ.get("BENCH_STATIC_DIR") else hello
