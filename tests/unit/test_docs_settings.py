"""docs/settings.md is what scripts/reference.py makes from Config now, and what it says about
the file keys and variables is what the settings loader does."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from asyncwsgi.config import Config, number_kind
from asyncwsgi.errors import ConfigError
from asyncwsgi.process.settings import env_options, file_options

ROOT = Path(__file__).resolve().parents[2]


def _reference():
    spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_is_generated_from_the_code_as_it_is():
    assert (ROOT / "docs" / "settings.md").read_text() == _reference().settings_page(), (
        "docs/settings.md is out of date: run python scripts/reference.py"
    )


@pytest.mark.skipif(sys.version_info < (3, 11), reason="settings files need tomllib (Python 3.11+)")
def test_every_row_s_file_key_and_variable_are_taken(tmp_path):
    """Each documented file key and variable is one the loader knows, as the setting it names."""
    page = (ROOT / "docs" / "settings.md").read_text()
    rows = re.findall(r"^\| `[^`]+` \| `([a-z-]+)` \| `(ASYNCWSGI_[A-Z_]+)` \|", page, re.M)
    assert len(rows) == len(dataclasses.fields(Config))
    for key, variable in rows:
        name = key.replace("-", "_")
        default = next(f.default for f in dataclasses.fields(Config) if f.name == name)
        text, toml = (
            ("true", "true") if isinstance(default, bool) else ("1", "1") if number_kind(name) else ("x", '"x"')
        )
        assert set(env_options({variable: text})) == {name}
        assert set(file_options(str(_write(tmp_path, f"{key} = {toml}\n")))[0]) == {name}
    options, _ = file_options(str(_write(tmp_path, "access-log = false\nthreads = 4\n")))
    assert options == {"access_log": False, "threads": 4}
    assert env_options({"ASYNCWSGI_ACCESS_LOG": "false"}) == {"access_log": False}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="settings files need tomllib (Python 3.11+)")
def test_a_negated_key_is_refused_naming_the_right_one(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting 'no-access-log'; write access-log = false"):
        file_options(str(_write(tmp_path, "no-access-log = true\n")))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path
