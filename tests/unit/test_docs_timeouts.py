"""docs/timeouts.md against the code: the flags it names exist, the defaults it states are
the defaults, and its example is valid Python."""

from __future__ import annotations

import ast
import dataclasses
import re

from asyncwsgi.config import Config, flag_name
from tests.proc import ROOT

PAGE = (ROOT / "docs" / "timeouts.md").read_text()
FLAGS = {flag_name(f.name): f for f in dataclasses.fields(Config)}


def _section(title: str) -> str:
    return PAGE.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_flag_in_the_tables_of_our_own_settings_exists():
    ours = _section("What waits where") + _section("`--request-timeout`") + _section("What the defaults can cost")
    mapping = [line.rsplit("|", 2)[-2] for line in _section("Coming from another server").splitlines()[2:]]
    named = set(re.findall(r"`(--[a-z-]+)", ours + "\n".join(mapping)))
    assert named, "no flags found: the page's layout changed"
    assert named <= set(FLAGS), named - set(FLAGS)


def test_the_stated_defaults_are_the_defaults():
    stated = re.findall(r"`(--[a-z-]+) (\d+)`", _section("What the defaults can cost"))
    assert len(stated) >= 6
    for flag, value in stated:
        assert FLAGS[flag].default == int(value), flag


def test_the_example_is_valid_python_that_reads_the_documented_keys():
    code = re.search(r"```python\n(.*?)```", PAGE, re.S)
    assert code is not None
    tree = ast.parse(code.group(1))
    keys = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert "asyncwsgi.time_remaining" in keys
