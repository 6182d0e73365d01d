"""Files sent from the page cache to a connection's socket by the kernel, on either loop. [loop]

``os.sendfile`` copies no byte through Python. The stdlib loop has ``loop.sendfile`` for its
transports, which pauses reading for the while; uvloop has none (it raises NotImplementedError),
and both refuse ``add_writer`` on a socket a transport owns. ``FileSender`` does the job alike for
both: once the transport has written all it holds (the response's head), it hands the kernel the
file with ``os.sendfile`` on the socket's descriptor, and when the socket is full it waits for it
to be writable through an epoll set of its own, whose one descriptor the loop watches as a reader.
The transport goes on reading meanwhile (a pipelined request waits in the connection as usual),
and nothing writes through it until the file is sent.

Linux only (epoll; sendfile to a socket). Elsewhere, and over TLS (the kernel cannot encrypt),
``usable`` is False and the caller sends the file in bounded reads through the transport.
"""

from __future__ import annotations

import asyncio
import os
import select
from typing import Any, Dict, Optional

# How long to wait for a transport to write out what it holds before the file goes: its buffer
# drains as the socket takes it. The head of a response is written at the end of the loop's
# iteration at the latest (uvloop gathers an iteration's writes), so the first wait is one
# iteration, with no timer. What a slow client had not read yet (a response spooled after its
# first megabyte) may take seconds, so the next waits start at 1 ms and double, up to 50 ms,
# rather than wake the loop every millisecond.
_DRAIN_POLL_SECONDS = 0.001
_DRAIN_POLL_MAX_SECONDS = 0.05


class FileSender:
    """Sends file regions to sockets owned by the loop's transports."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        supported = hasattr(select, "epoll") and hasattr(os, "sendfile")
        self._epoll: Optional[Any] = select.epoll() if supported else None
        self._waiters: Dict[int, asyncio.Future[None]] = {}  # fd -> woken when it is writable
        self._watching = False  # the loop reads the epoll descriptor

    def usable(self, transport: Any) -> bool:
        """Whether files can go to this transport's socket by sendfile (not over TLS)."""
        return (
            self._epoll is not None
            and transport.get_extra_info("sslcontext") is None
            and transport.get_extra_info("socket") is not None
        )

    async def send(self, transport: Any, file: int, offset: int, count: int, timeout: float) -> int:
        """Send ``count`` bytes of the file descriptor ``file`` from ``offset``; the bytes sent
        (fewer if the file ended). TimeoutError when the socket takes nothing for ``timeout``
        seconds (0: no limit); OSError as the socket reports it (a reset, a broken pipe)."""
        sock = transport.get_extra_info("socket")
        fd = sock.fileno()
        delay = 0.0
        while transport.get_write_buffer_size():
            if transport.is_closing():
                return 0
            await asyncio.sleep(delay)  # what the transport holds goes out first, in order
            delay = min(2 * delay, _DRAIN_POLL_MAX_SECONDS) if delay else _DRAIN_POLL_SECONDS
        sent = 0
        while sent < count:
            if transport.is_closing():
                break
            try:
                done = os.sendfile(fd, file, offset + sent, count - sent)
            except (BlockingIOError, InterruptedError):
                await self._writable(fd, timeout)
                continue
            if done == 0:
                break  # the file ended
            sent += done
        return sent

    async def _writable(self, fd: int, timeout: float) -> None:
        epoll = self._epoll
        assert epoll is not None
        if not self._watching:
            self._loop.add_reader(epoll.fileno(), self._wake)
            self._watching = True
        waiter = self._loop.create_future()
        self._waiters[fd] = waiter
        # A timer of its own rather than asyncio.wait_for, which wraps the wait in a task: this
        # wait comes once for every socket buffer's worth of a large file.
        timer = self._loop.call_later(timeout, _time_out, waiter) if timeout else None
        flags = select.EPOLLOUT | select.EPOLLONESHOT
        try:
            try:
                epoll.modify(fd, flags)
            except FileNotFoundError:
                epoll.register(fd, flags)
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiters.get(fd) is waiter:
                del self._waiters[fd]
            try:
                epoll.unregister(fd)
            except OSError:
                pass  # closed already (a closed descriptor leaves every epoll set)

    def _wake(self) -> None:
        """[loop, the epoll descriptor is readable] Wake the senders whose sockets can take more."""
        assert self._epoll is not None
        for fd, _ in self._epoll.poll(0):
            waiter = self._waiters.pop(fd, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        if self._epoll is not None:
            if self._watching:
                self._loop.remove_reader(self._epoll.fileno())
                self._watching = False
            self._epoll.close()
            self._epoll = None


def _time_out(waiter: asyncio.Future[None]) -> None:
    """[loop] The socket took nothing for the write timeout."""
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
