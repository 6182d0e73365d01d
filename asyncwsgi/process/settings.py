"""Where the CLI's configuration comes from, lowest first: defaults, a TOML file, the environment
(``ASYNCWSGI_*``), then the command line. [main]

The file is ``-c PATH`` (top-level keys), or else ``[tool.asyncwsgi]`` in ``pyproject.toml`` in
the current directory. Keys are Config field names, with ``-`` or ``_``. Unknown keys and unknown
``ASYNCWSGI_*`` variables are errors that name where they came from: a typo never silently
falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Dict, Mapping, Optional, Tuple

from ..config import Config, flag_name, number_kind
from ..errors import ConfigError

ENV_PREFIX = "ASYNCWSGI_"
_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def file_options(path: Optional[str], cwd: str = ".") -> Tuple[Dict[str, Any], Optional[str]]:
    """Options from ``path``, or from pyproject.toml's [tool.asyncwsgi]; and the source's name."""
    if path is None:
        pyproject = os.path.join(cwd, "pyproject.toml")
        if not os.path.exists(pyproject):
            return {}, None
        table = _read_toml(pyproject).get("tool", {}).get("asyncwsgi")
        if table is None:
            return {}, None
        source = f"{pyproject} [tool.asyncwsgi]"
    else:
        table = _read_toml(path)
        source = path
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: expected a table of settings")
    return {_field(key, source): _from_toml(key, value, source) for key, value in table.items()}, source


def env_options(environ: Mapping[str, str]) -> Dict[str, Any]:
    """Options from ``ASYNCWSGI_THREADS=16`` and the like."""
    options = {}
    for variable, text in environ.items():
        if not variable.startswith(ENV_PREFIX):
            continue
        name = _field(variable[len(ENV_PREFIX) :].lower(), f"environment variable {variable}")
        options[name] = _from_text(name, text, f"environment variable {variable}")
    return options


def to_toml(config: Config) -> str:
    """The effective configuration, as a file ``-c`` would accept (for ``--print-config``)."""
    lines = ["# asyncwsgi settings: defaults < file < environment < command line"]
    for name in _FIELDS:
        value = getattr(config, name)
        key = name.replace("_", "-")
        if value is None:
            lines.append(f"# {key} = (not set)")
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, (int, float)):
            lines.append(f"{key} = {value!r}")
        elif isinstance(value, tuple):
            lines.append(f"{key} = [{', '.join(json.dumps(v) for v in value)}]")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _read_toml(path: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError("configuration files need Python 3.11+, or 'pip install tomli' on 3.10") from None
    try:
        with open(path, "rb") as file:
            data: Dict[str, Any] = tomllib.load(file)
            return data
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _field(key: str, source: str) -> str:
    name = key.replace("-", "_")
    if name not in _FIELDS:
        negated = name[3:] if name.startswith("no_") else ""
        if _FIELDS.get(negated) is not None and _FIELDS[negated].default is True:
            # --no-access-log is the flag; the setting is the positive name, set false.
            raise ConfigError(f"{source}: unknown setting {key!r}; write {negated.replace('_', '-')} = false")
        raise ConfigError(f"{source}: unknown setting {key!r}")
    return name


def _from_toml(key: str, value: Any, source: str) -> Any:
    name = key.replace("-", "_")
    if isinstance(value, list):
        if not _FIELDS[name].metadata.get("repeat"):
            raise ConfigError(f"{source}: {key} takes one value, not a list")
        return tuple(value)
    if _FIELDS[name].metadata.get("repeat") and isinstance(value, str):
        return (value,)
    return value  # Config checks the type and names the flag


def _from_text(name: str, text: str, source: str) -> Any:
    field = _FIELDS[name]
    if isinstance(field.default, bool):
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{source}: expected true or false, got {text!r}")
    if field.metadata.get("repeat"):
        return tuple(text.replace(",", " ").split())
    kind = number_kind(name)
    if kind is not None:
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{source}: {flag_name(name)} expects {kind.__name__}, got {text!r}") from None
    return text
