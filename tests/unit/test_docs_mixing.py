"""docs/mixing.md against the code: its flags and defaults exist as stated, its examples are
the example's real names, and its embed example is valid Python."""

from __future__ import annotations

import ast
import dataclasses
import re

from asyncwsgi.config import Config, flag_name
from examples import chat
from tests.proc import ROOT

PAGE = (ROOT / "docs" / "mixing.md").read_text()
FLAGS = {flag_name(f.name): f for f in dataclasses.fields(Config)}


def test_every_flag_named_exists():
    named = set(re.findall(r"`(--(?:no-)?[a-z-]+)", PAGE))
    named = {flag.replace("--no-", "--") for flag in named}
    assert "--mount" in named and "--ws-max-size" in named
    assert named - {"--factory"} <= set(FLAGS), named - set(FLAGS)  # --factory is the command's own


def test_the_option_table_states_the_defaults():
    rows = re.findall(r"\| `(--[a-z-]+) [A-Z]+` \| `(\d+)` \|", PAGE)
    assert len(rows) == 3
    for flag, value in rows:
        assert FLAGS[flag].default == int(value), flag


def test_the_command_names_the_examples_objects():
    command = re.search(r"asyncwsgi (examples\.chat:(\w+)) --mount /ws=examples\.chat:(\w+)", PAGE)
    assert command is not None
    assert callable(getattr(chat, command.group(2))) and callable(getattr(chat, command.group(3)))


def test_the_python_examples_parse():
    blocks = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    assert len(blocks) == 2
    for block in blocks:
        ast.parse(block)


def test_the_stated_spec_version_is_the_scopes():
    from asyncwsgi.asgi.scope import ASGI_VERSION

    stated = re.search(r"`spec_version` `([\d.]+)`", PAGE)
    assert stated is not None and stated.group(1) == ASGI_VERSION["spec_version"]
