"""docs/deployment.md's container and Kubernetes recipes, run as far as this machine allows.

There is no container runtime or cluster here, so the recipes are checked for what they rely on:
the image's command and the pod's args are the same valid command; the grace period covers the
preStop sleep plus --graceful-timeout; and that exact command, run as a real process, answers
both probes from the loop, refuses new connections after SIGTERM while the request in flight
finishes, and exits 0 well within the grace period.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from typing import List

from tests.helpers import Reader, get, wait_for
from tests.proc import ROOT, WAIT, CLIServer

DOC = (ROOT / "docs" / "deployment.md").read_text()


def _dockerfile_cmd() -> List[str]:
    block = re.search(r"```dockerfile\n(.*?)```", DOC, re.DOTALL)
    assert block, "no dockerfile block"
    cmd = re.search(r"^CMD (\[.*?\])\s*$", block.group(1).replace("\\\n", " "), re.MULTILINE | re.DOTALL)
    assert cmd, "no exec-form CMD"
    return json.loads(cmd.group(1))


def _manifest() -> str:
    block = re.search(r"## Kubernetes\n\n```yaml\n(.*?)```", DOC, re.DOTALL)
    assert block, "no Kubernetes manifest"
    return block.group(1)


def _pod_args() -> List[str]:
    args = re.search(r"args: (\[.*?\])\n", _manifest(), re.DOTALL)
    assert args
    return json.loads(args.group(1))


def _number(pattern: str) -> float:
    found = re.search(pattern, _manifest())
    assert found, pattern
    return float(found.group(1))


def _flag(args: List[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_image_and_pod_run_the_same_command():
    assert _dockerfile_cmd() == _pod_args()
    assert _dockerfile_cmd()[0] == "asyncwsgi"


def test_probes_point_at_the_paths_the_command_serves():
    args = _pod_args()
    assert _number(r"livenessProbe:\s+httpGet: \{path: /healthz, port: (\d+)\}") == 8000
    assert "livenessProbe:\n        httpGet: {path: " + _flag(args, "--health-path") in _manifest()
    assert "readinessProbe:\n        httpGet: {path: " + _flag(args, "--ready-path") in _manifest()
    assert _flag(args, "--bind").endswith(":8000")


def test_grace_period_covers_the_prestop_sleep_and_the_drain():
    grace = _number(r"terminationGracePeriodSeconds: (\d+)")
    pre_stop = _number(r'command: \["sleep", "(\d+)"\]')
    drain = float(_flag(_pod_args(), "--graceful-timeout"))
    assert grace > pre_stop + drain


def _ask(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(get(path))
        return Reader(sock).response().status


def test_the_documented_command_probes_then_drains_on_sigterm():
    args = _pod_args()[1:]
    args[0] = "tests.apps.basic:slow"  # in place of myapp.wsgi:application
    args[args.index("--bind") + 1] = "127.0.0.1:0"
    with CLIServer(*args) as server:
        server.wait_listening()
        assert _ask(server.port, _flag(args, "--health-path")) == 200
        assert _ask(server.port, _flag(args, "--ready-path")) == 200
        in_flight: List[int] = []
        client = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT)
        client.sendall(get("/?1.5"))  # a request that takes 1.5 s in the app
        reader = threading.Thread(target=lambda: in_flight.append(Reader(client).response().status))
        reader.start()
        time.sleep(0.3)  # let the server read the request (it would also be served if still queued)
        sigterm_at = time.monotonic()
        server.signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        assert wait_for(refused, interval=0.05)  # not accepting: probes fail, no new traffic lands
        reader.join(WAIT)
        client.close()
        assert in_flight == [200]  # the request in flight was finished
        assert server.wait() == 0
        assert time.monotonic() - sigterm_at < float(_flag(args, "--graceful-timeout"))
