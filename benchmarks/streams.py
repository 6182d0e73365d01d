"""Hold N idle WebSockets and M server-sent event streams open against a server.

python benchmarks/streams.py PORT PREFIX WEBSOCKETS SSE   # prints "ready" when all are open;
                                                         # closes them when stdin closes

Raw sockets, so 12,000 clients cost this process little: a WebSocket is a handshake and a read
of the 101; an SSE stream is a GET whose events are read and dropped. Prints how many of each
really opened (a server that refuses some is visible).
"""

import asyncio
import base64
import os
import resource
import sys
from typing import List, Set, Tuple

_READERS: Set["asyncio.Task[None]"] = set()  # the tasks that read each stream, kept alive here


async def websocket(port: int, path: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head[:40])
    _READERS.add(asyncio.ensure_future(_drain(reader)))  # pings, answered by nobody: idle clients
    return writer


async def sse(port: int, path: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head[:40])
    _READERS.add(asyncio.ensure_future(_drain(reader)))
    return writer


async def _drain(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(65536):
            pass
    except (OSError, asyncio.CancelledError):
        pass


async def open_all(port: int, prefix: str, sockets: int, streams: int) -> Tuple[List[asyncio.StreamWriter], int, int]:
    writers: List[asyncio.StreamWriter] = []
    counts = [0, 0]
    for kind, count, path in ((0, sockets, prefix + "/ws"), (1, streams, prefix + "/sse")):
        opener = websocket if kind == 0 else sse
        for start in range(0, count, 250):
            batch = await asyncio.gather(
                *(opener(port, path) for _ in range(min(250, count - start))), return_exceptions=True
            )
            for item in batch:
                if isinstance(item, asyncio.StreamWriter):
                    writers.append(item)
                    counts[kind] += 1
    return writers, counts[0], counts[1]


async def main(port: int, prefix: str, sockets: int, streams: int) -> None:
    writers, opened_ws, opened_sse = await open_all(port, prefix, sockets, streams)
    print(f"ready websockets={opened_ws} sse={opened_sse}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for writer in writers:
        writer.close()


if __name__ == "__main__":
    port, prefix, sockets, streams = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, sockets + streams + 256)), hard))
    asyncio.run(main(port, prefix, sockets, streams))
