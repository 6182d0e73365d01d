"""docs/stats.md against what a real server reports at its stats path: every JSON key and
Prometheus family, and nothing that is not there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from asyncwsgi.process import fleet
from asyncwsgi.server import probes
from tests.apps import basic
from tests.helpers import get, request

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "stats.md").read_text()


def _section(title: str) -> str:
    return PAGE.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _documented_keys(title: str) -> set:
    return set(re.findall(r"^\| `(\w+)` \|", _section(title), re.M))


def test_the_page_lists_every_key_and_metric_the_server_reports(serve):
    srv = serve(basic.hello, stats_path="/stats")
    data = json.loads(request(srv.port, get("/stats")).body)
    assert _documented_keys("One process") == set(data)

    total, _ = fleet.compose([(0, 1, data), (1, 2, data)], {}, 0)
    assert _documented_keys("A group of workers") == (set(total) | {"workers"}) - set(data)

    text = request(srv.port, get("/stats?format=prometheus")).body.decode()
    families = set(re.findall(r"^# TYPE (\w+) (\w+)$", text, re.M))
    families |= set(re.findall(r"^# TYPE (\w+) (\w+)$", probes.prometheus_fleet({0: dict(data, pids=[1])}), re.M))
    documented = set(re.findall(r"^\| `(asyncwsgi_\w+)` \| (\w+) \|", _section("Prometheus"), re.M))
    assert documented == families
