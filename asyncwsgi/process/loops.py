"""Pick the event loop implementation: ``auto`` | ``asyncio`` | ``uvloop``. [main]

uvloop is imported only when asked for (or probed by ``auto``), so it stays an optional extra.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..errors import LoopUnavailable

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def resolve_loop(name: str) -> tuple[str, LoopFactory]:
    """Return the concrete loop name and a factory making new loops of that kind."""
    if name == "asyncio":
        return "asyncio", asyncio.SelectorEventLoop
    if name in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if name == "auto":
                return "asyncio", asyncio.SelectorEventLoop
            raise LoopUnavailable("--loop uvloop: uvloop is not installed (pip install 'asyncwsgi[uvloop]')") from None
        return "uvloop", uvloop.new_event_loop
    raise LoopUnavailable(f"--loop must be one of auto, asyncio, uvloop; got {name!r}")
