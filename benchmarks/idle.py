"""Hold N idle keep-alive connections to a server: each sends one request, reads the answer, waits.

python benchmarks/idle.py PORT N      # prints "ready" once all are idle; exits when stdin closes

A server that cannot answer them all within ``SETUP_SECONDS`` (one with a thread per connection
answers only as many as it has threads) gets "failed: ..." instead, and the holder exits.
"""

import asyncio
import resource
import sys

SETUP_SECONDS = 60.0


async def hold(port: int, count: int) -> None:
    writers: list = []
    try:
        await asyncio.wait_for(connect_all(port, count, writers), SETUP_SECONDS)
    except (asyncio.TimeoutError, OSError) as exc:
        print(f"failed: {len(writers)} of {count} connections answered ({exc!r})", flush=True)
        return
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for writer in writers:
        writer.close()


async def connect_all(port: int, count: int, writers: list) -> None:
    for start in range(0, count, 500):
        size = min(500, count - start)
        batch = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(size)))
        for _, writer in batch:
            writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        for reader, writer in batch:
            await reader.readuntil(b"Hello, world!")
            writers.append(writer)


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    asyncio.run(hold(port, count))


if __name__ == "__main__":
    main()
