"""The worker side of the supervisor's protocol (``--workers``, ``--reload``). [loop]

A worker the supervisor started (``supervisor.py``) has a pipe back to it: this module beats on
it while the worker's event loop turns (a stuck loop stops the beats, and ``--worker-timeout``
replaces the worker), and asks on it for a successor (``REPLACE_ME``) once the worker has served
``--max-requests`` (plus up to ``--max-requests-jitter``), or once as many requests as
``--threads`` have been stuck past ``--request-timeout`` for as long again. The supervisor starts
the successor first and stops this worker (a drain) once the successor serves, so no request
waits for a worker. A process the command runs alone (one worker, no option that needs
supervision: ``Config.supervised``) has no pipe, and none of this runs.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import List, Optional

from ..config import Config
from ..log import error_log
from ..server.server import Server
from . import fleet
from .supervisor import HEARTBEAT_SECONDS, REPLACE_ME, heartbeat_fd


def start_supervised(server: Server, config: Config) -> List[asyncio.Task[None]]:
    """The tasks of a supervised worker (none when the supervisor did not start us)."""
    supervisor = heartbeat_fd()
    if supervisor is None:
        return []
    tasks = [asyncio.ensure_future(_heartbeat(server, supervisor))]
    directory, slot = os.environ.get(fleet.DIRECTORY_ENV), os.environ.get(fleet.SLOT_ENV, "")
    if directory and slot.isdigit():  # --stats-path: one view of the group (fleet.py)
        stats = fleet.FleetStats(directory, int(slot))
        server.report_fleet(stats.view)
        tasks.append(asyncio.ensure_future(stats.keep_publishing(server)))
    if config.max_requests:
        limit = config.max_requests + random.randint(0, config.max_requests_jitter)
        tasks.append(asyncio.ensure_future(_recycle_after(server, limit, supervisor)))
    if config.request_timeout:
        tasks.append(asyncio.ensure_future(_recycle_when_stuck(server, config.request_timeout, supervisor)))
    return tasks


async def _heartbeat(server: Server, fd: int) -> None:
    """Tell the supervisor, from the event loop, that the loop turns."""
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                os.write(fd, b".")
            except BlockingIOError:
                pass  # the supervisor is busy; it has a beat to read already
            except OSError:
                error_log.warning("supervisor gone: shutting down")
                server.close()
                return
            await asyncio.sleep(HEARTBEAT_SECONDS)
    finally:
        os.close(fd)


async def _recycle_when_stuck(server: Server, grace: float, supervisor: int) -> None:
    """Ask for a fresh worker once as many requests as --threads have been
    stuck past --request-timeout (each holding a thread) for ``grace`` more seconds.

    Python cannot stop those threads; a process can be replaced. This worker stops accepting
    (new connections wait in the socket for the successor); the supervisor starts the successor
    and stops this worker (SIGTERM, a drain) once the successor serves. The stuck requests have
    been answered; spare threads (--spare-threads) serve this worker's own connections
    meanwhile. Without spares, requests that still wait in its queue get their 504 at their
    deadlines.
    """
    loop = asyncio.get_running_loop()
    since: Optional[float] = None
    while True:
        await asyncio.sleep(min(1.0, grace / 4))
        if not server.threads_lost():
            since = None
            continue
        if since is None:
            since = loop.time()
        elif loop.time() - since >= grace:
            error_log.warning(
                "%d requests have held their threads past --request-timeout for %.1fs: asking for a fresh worker",
                server.config.threads,
                loop.time() - since,
            )
            # A connection accepted now would wait for a thread, or take a spare that the
            # successor has plenty of: leave new ones in the socket (the supervisor holds it).
            server.stop_accepting()
            await _ask_for_successor(supervisor)
            return


async def _recycle_after(server: Server, limit: int, supervisor: int) -> None:
    """After ``limit`` requests, ask for a fresh worker; this one serves on
    until the supervisor stops it, once the successor serves."""
    # Polled ten times a second: an event set per request would put a check on the hot path.
    while server.stats.requests < limit:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    error_log.info("served %d requests (--max-requests): asking for a fresh worker", server.stats.requests)
    await _ask_for_successor(supervisor)


async def _ask_for_successor(supervisor: int) -> None:
    """Send ``REPLACE_ME`` on the heartbeat pipe (non-blocking: retried while it is full)."""
    while True:
        try:
            os.write(supervisor, REPLACE_ME)
            return
        except BlockingIOError:
            await asyncio.sleep(0.1)
        except OSError:
            return  # the supervisor is gone: the heartbeat task shuts this worker down
