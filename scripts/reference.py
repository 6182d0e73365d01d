"""Write docs/settings.md, the reference of every setting, from Config itself.

    python scripts/reference.py          # rewrite the page
    python scripts/reference.py --check  # exit 1 if the page differs (tests/unit/test_docs_settings.py)

Each row: the flag, the settings-file key, the environment variable, the default, the help text
the command prints, and the version that brought it (a field's ``since``, 0.1.0 unless set).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asyncwsgi.config import Config, field_choices, flag_name  # noqa: E402
from asyncwsgi.process.settings import ENV_PREFIX  # noqa: E402

PAGE = ROOT / "docs" / "settings.md"
HEAD = """# Settings reference

Every setting, in the order `asyncwsgi --help` lists them. Each can be given three ways, from
lowest to highest precedence:

- in a settings file: a TOML file named by `-c FILE` (top-level keys), or else the
  `[tool.asyncwsgi]` table of `./pyproject.toml`; keys may use `-` or `_`;
- in the environment: `ASYNCWSGI_` and the name in capitals (`ASYNCWSGI_THREADS=16`); a repeated
  setting takes its values separated by spaces or commas, a switch takes `true` or `false`;
- on the command line.

A switch that is on by default has a `--no-` flag, and its file key and variable are the
positive name set false: `--no-access-log` is `access-log = false` or `ASYNCWSGI_ACCESS_LOG=false`
(`no-access-log = true` is refused, naming the right key). An unknown key or variable is an
error, never ignored. `asyncwsgi --print-config` prints the settings in effect as a file `-c`
takes. `WEB_CONCURRENCY` sets `--workers` when nothing else does.

`start_server()` takes the same names as keyword arguments, except the settings marked
*command only*, which it refuses: they start processes, switch users, pick the loop or
configure the process's logging.

This page is generated from the code (`python scripts/reference.py`); a test fails when they
differ.

| setting | file key | environment | default | since | what it does |
| --- | --- | --- | --- | --- | --- |
"""


def _default(value: Any) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "none" if not value else ", ".join(f"`{v}`" for v in value)
    if isinstance(value, str):
        return f"`{json.dumps(value)[1:-1]}`" if value else '`""`'
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("%%", "%")


def settings_page() -> str:
    from asyncwsgi.config import COMMAND_ONLY

    rows: List[str] = []
    for field in dataclasses.fields(Config):
        meta = field.metadata
        flag = flag_name(field.name)
        key = field.name.replace("_", "-")
        if field.default is True:
            shown, helptext = f"`--no-{flag[2:]}`", f"{meta['no_help']} (On by default: {meta['help']})"
        elif field.default is False:
            shown, helptext = f"`{flag}`", meta["help"]
        else:
            metavar = meta.get("metavar")
            choices = field_choices(field.name)
            argument = "|".join(choices) if choices else (metavar or field.name.upper())
            shown, helptext = f"`{flag} {argument}`", meta["help"]
        if meta.get("repeat"):
            helptext += " Repeatable (a list in the file)."
        if field.name in COMMAND_ONLY:
            helptext += " *Command only.*"
        env = f"`{ENV_PREFIX}{field.name.upper()}`"
        since = meta.get("since", "0.1.0")
        rows.append(f"| {_cell(shown)} | `{key}` | {env} | {_default(field.default)} | {since} | {_cell(helptext)} |")
    return HEAD + "\n".join(rows) + "\n"


def main(argv: List[str]) -> int:
    text = settings_page()
    if "--check" in argv:
        if PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python scripts/reference.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
