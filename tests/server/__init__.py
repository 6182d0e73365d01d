"""One in-process server over real sockets, on asyncio and on uvloop (the `serve` fixture), or
the protocol through tests/harness.py."""
