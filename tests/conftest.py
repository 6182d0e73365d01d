from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, Iterator, List

import pytest

from asyncwsgi.process.loops import resolve_loop
from tests.helpers import ServerThread

LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def serve(loop_name: str) -> Iterator[Callable[..., ServerThread]]:
    """Start servers on the parametrized loop; stop them and check no thread leaked."""
    before = {t.ident for t in threading.enumerate()}
    started: List[ServerThread] = []

    def start(app: Any, **options: Any) -> ServerThread:
        server = ServerThread(app, loop=loop_name, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
    leaked = [
        t for t in threading.enumerate() if t.ident not in before and t.is_alive() and t.name.startswith("asyncwsgi")
    ]
    for thread in leaked:
        thread.join(5)
    names = [t.name for t in leaked if t.is_alive()]
    assert not names, f"threads leaked after server stop: {names}"


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async test on the stdlib loop and on uvloop."""
    return {name: resolve_loop(name)[1] for name in LOOPS}
