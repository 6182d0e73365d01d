"""The wait of one WSGI request for a thread: its --queue-timeout and a watch for a reset. [loop]

Made only for a request that waits: parked (every slot of the pool taken: its connection is not
read meanwhile) or admitted behind busy threads, in the pool's queue. Under light load most
requests never make one.

* ``--queue-timeout``: the request is filed in the server's ``DeadlineWheel``; if no thread has
  started it in time, its owner answers 503 from the loop (``Waiter.queue_timed_out``).
* A reset: while it waits, the connection stops reading it as soon as more bytes come, and a
  socket that is not read does not report a reset; the connection watches it meanwhile
  (``Connection.watch_for_reset``), so a client that gives up does not leave a request for the
  app to run for nobody.
"""

from __future__ import annotations

from typing import Optional, Protocol

from ..deadlines import DeadlineWheel
from ..seam import Connection


class Waiter(Protocol):
    def queue_timed_out(self) -> None:
        """No thread started the request within --queue-timeout."""


class ThreadWait:
    """From the moment a request must wait for a thread until one starts it (or it ends)."""

    __slots__ = ("_connection", "_owner", "_slot", "_wheel")

    def __init__(self, owner: Waiter, connection: Connection, wheel: DeadlineWheel, queue_timeout: float) -> None:
        self._owner = owner
        self._connection = connection
        self._wheel = wheel
        self._slot: Optional[int] = None  # our place in the wheel
        if queue_timeout:
            self._slot = wheel.add(self, wheel.now() + queue_timeout)
        connection.watch_for_reset(True)

    def on_deadline(self) -> None:
        """[DeadlineWheel] --queue-timeout has passed."""
        self._slot = None
        self._owner.queue_timed_out()

    def reset_seen(self) -> bool:
        """Whether the client has reset so far; the watch goes on (a parked request given its
        slot may still wait in the pool's queue)."""
        if self._connection.watch_for_reset(False):
            return True
        self._connection.watch_for_reset(True)
        return False

    def leave_queue(self) -> None:
        """A slot came: --queue-timeout is no longer the loop's to keep (the thread checks it
        when it takes the job)."""
        if self._slot is not None:
            self._wheel.remove(self, self._slot)
            self._slot = None

    def end(self) -> bool:
        """The wait is over for good; whether the client reset meanwhile."""
        self.leave_queue()
        return self._connection.watch_for_reset(False)
