"""docs/static.md against the code: the flags it names exist, its hashed and plain names are
what the server takes them for, and its settings-file line parses."""

from __future__ import annotations

import dataclasses
import re

from asyncwsgi.config import Config, flag_name
from asyncwsgi.process.settings import env_options
from asyncwsgi.static.representation import is_hashed
from tests.proc import ROOT

PAGE = (ROOT / "docs" / "static.md").read_text()
FLAGS = {flag_name(f.name) for f in dataclasses.fields(Config)}


# Other servers' flags, in the migration table.
THEIRS = {"--static-map", "--static-path-mount", "--static-path-route"}


def test_every_flag_named_exists():
    named = set(re.findall(r"`(--[a-z][a-z-]+)", PAGE)) - THEIRS
    assert "--static" in named and named <= FLAGS, named - FLAGS


def test_the_hashed_names_it_shows_are_hashed_and_the_plain_ones_are_not():
    for name in ("app.3f2a9c1b0d4e.css", "main.8f3a2b1c.js", "index-BsmFIKk4.js"):
        assert name in PAGE and is_hashed(name)
    for name in ("bootstrap-dropdown.js", "report-20261207.pdf"):
        assert name in PAGE and not is_hashed(name)


def test_the_environment_line_gives_two_mounts():
    line = re.search(r'`ASYNCWSGI_STATIC="([^"]+)"`', PAGE)
    assert line is not None
    assert env_options({"ASYNCWSGI_STATIC": line.group(1)})["static"] == ("/static=staticfiles", "/media=uploads")


def test_the_default_cache_control_is_the_configs():
    assert f"`{Config().static_cache_control}` by default" in PAGE
