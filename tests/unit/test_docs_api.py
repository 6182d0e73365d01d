"""docs/api.md against the package: every public name, every public member of Server, every
exception, every environ key the server sets; and start_server's signature as shown."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import asyncwsgi
from asyncwsgi import errors
from asyncwsgi.server.server import Server

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "api.md").read_text()


def _rows(title: str) -> set:
    section = PAGE.split(f"{title}\n", 1)[1].split("\n#", 1)[0]
    return {re.sub(r"\(.*", "", name) for name in re.findall(r"^\| `([^`]+)` \|", section, re.M)}


def test_every_public_name_has_its_section_or_row():
    documented = set(re.findall(r"^### `(\w+)`$", PAGE, re.M)) | _rows("## Exceptions")
    assert documented == set(asyncwsgi.__all__) - {"__version__"}


def test_every_exception_in_errors_that_reaches_users_is_listed():
    exported = {name for name in asyncwsgi.__all__ if inspect.isclass(getattr(asyncwsgi, name))}
    classes = {n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, BaseException)}
    assert _rows("## Exceptions") == classes & exported


def test_every_public_member_of_server_is_in_its_table():
    members = {name for name in vars(Server) if not name.startswith("_")}
    members |= {name for name in inspect.signature(Server.__init__).parameters if name == "tls"}
    assert _rows("### `Server`") == members


def test_the_signatures_shown_are_the_code_s():
    for function in (asyncwsgi.start_server, asyncwsgi.serve):
        parameters = []
        for p in inspect.signature(function).parameters.values():
            if p.kind is p.KEYWORD_ONLY and "*" not in parameters:
                parameters.append("*")
            prefix = "**" if p.kind is p.VAR_KEYWORD else ""
            default = "" if p.default is p.empty else f"={p.default!r}"
            parameters.append(f"{prefix}{p.name}{default}")
        assert f"async def {function.__name__}({', '.join(parameters)})" in PAGE


def test_every_environ_key_the_server_sets_is_listed():
    source = "\n".join(path.read_text() for path in (ROOT / "asyncwsgi").rglob("*.py"))
    keys = set(re.findall(r'environ\["(asyncwsgi\.\w+)"\] =', source))
    assert keys and _rows("## Environ keys") == keys
