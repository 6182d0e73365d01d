"""The package's layers, read from the folder listing, and the rule that keeps them: a module
imports only from its own layer or those below it (docs/how-it-works.md, "The layers").

    base (errors, log, types, accesslog)  <  http/  <  wsgi/  <  asgi/  <  config  <  server/  <  process/

The package's own entry points sit above every layer: ``__init__`` (the public API),
``__main__`` and the ``gunicorn`` shim (the documented ``-k asyncwsgi.gunicorn.Worker`` path).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.proc import ROOT

PACKAGE = ROOT / "asyncwsgi"
ORDER = ["base", "http", "wsgi", "asgi", "config", "server", "process", "entry"]
BASE = {"errors", "log", "types", "accesslog"}
ENTRY = {"__init__", "__main__", "gunicorn"}


def layer_of(dotted: str) -> str:
    """The layer of a module named relative to the package (``server.protocol``, ``config``)."""
    head = dotted.split(".")[0]
    if head in ("http", "wsgi", "asgi", "server", "process"):
        return head
    if head in BASE:
        return "base"
    if head == "config":
        return "config"
    if head in ENTRY or head == "":
        return "entry"
    raise AssertionError(f"module {dotted!r} is in no layer: add it to tests/unit/test_layers.py")


def modules() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path


def imports_of(dotted: str, source: str, is_package: bool = False) -> Iterator[Tuple[str, int]]:
    """Package-internal modules ``source`` (module ``dotted``) imports, relative to the package."""
    package = dotted.split(".") if is_package else dotted.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
                if node.module is None:  # from . import a, b: modules, or the package's own names
                    for alias in node.names:
                        name = ".".join([*target, alias.name])
                        if (PACKAGE / Path(*name.split("."))).with_suffix(".py").exists():
                            yield name, node.lineno
                else:
                    yield ".".join(target), node.lineno
            elif node.module and node.module.startswith("asyncwsgi."):
                yield node.module[len("asyncwsgi.") :], node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("asyncwsgi."):
                    yield alias.name[len("asyncwsgi.") :], node.lineno


def violations(dotted: str, source: str, is_package: bool = False) -> List[str]:
    own = ORDER.index(layer_of(dotted))
    return [
        f"line {line}: {dotted} ({layer_of(dotted)}) imports {target} ({layer_of(target)})"
        for target, line in imports_of(dotted, source, is_package)
        if target and ORDER.index(layer_of(target)) > own
    ]


@pytest.mark.parametrize("dotted,path", list(modules()), ids=[name for name, _ in modules()])
def test_imports_go_down_the_layers(dotted, path):
    assert violations(dotted, path.read_text(), path.name == "__init__.py") == []


def test_the_rule_can_fail():
    """An import up the layers is caught; the same import down them is not."""
    assert violations("http.response", "from ..server.protocol import HTTPProtocol\n")
    assert violations("wsgi.app", "import asyncwsgi.process.cli\n")
    assert violations("config", "from .server import context\n")
    assert not violations("server.protocol", "from ..http.response import simple_response\n")
