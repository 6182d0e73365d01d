"""The package's layers, read from the folder listing, and the rules that keep them
(docs/how-it-works.md, "The layers"):

* a module imports only from its own layer or those below it:

    base (errors, log, types, accesslog)  <  http/  <  static/  <  wsgi/  <  asgi/  <  config  <  server/  <  process/

  The package's own entry points sit above every layer: ``__init__`` (the public API),
  ``__main__`` and the ``gunicorn`` shim (the documented ``-k asyncwsgi.gunicorn.Worker`` path);
* inside ``server/``, the request cycles sit below the connection: imports run connection ->
  dispatch -> cycle -> seam, and nothing in ``server/cycle/`` names the connection's modules (or
  dispatch, or the server above them); the connection names no cycle but through dispatch; the
  seam names nothing of server/;
* no module takes part in an import circle.

Every import counts: at module level, under ``TYPE_CHECKING``, and inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from tests.proc import ROOT

PACKAGE = ROOT / "asyncwsgi"
ORDER = ["base", "http", "static", "wsgi", "asgi", "config", "server", "process", "entry"]
BASE = {"errors", "log", "types", "accesslog"}
ENTRY = {"__init__", "__main__", "gunicorn"}


def layer_of(dotted: str) -> str:
    """The layer of a module named relative to the package (``server.protocol``, ``config``)."""
    head = dotted.split(".")[0]
    if head in ("http", "static", "wsgi", "asgi", "server", "process"):
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
            elif node.module and node.module.startswith("asyncwsgi."):
                target = node.module[len("asyncwsgi.") :].split(".")
            else:
                continue
            if node.module is not None:
                yield ".".join(target), node.lineno
            for alias in node.names:  # from package import module: the module too
                name = ".".join([*target, alias.name])
                if (PACKAGE / Path(*name.split("."))).with_suffix(".py").exists():
                    yield name, node.lineno
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


# --- inside server/: the connection above the request cycles -----------------------------------

CYCLE = "server.cycle"
CONNECTION = "server.connection"
# What the cycles may not name: the connection, and what sits above the cycles.
ABOVE_THE_CYCLES = (CONNECTION, "server.dispatch", "server.server", "server.listener", "server.tls")


SEAM = "server.seam"


def seam_violations(dotted: str, source: str, is_package: bool = False) -> List[str]:
    """Imports that cross the seam the wrong way."""
    found = []
    for target, line in imports_of(dotted, source, is_package):
        if dotted.startswith(CYCLE) and target.startswith(ABOVE_THE_CYCLES):
            found.append(f"line {line}: {dotted} (a request cycle) imports {target}")
        if dotted == SEAM and target.startswith("server"):
            found.append(f"line {line}: the seam imports {target}")
        if dotted.startswith(CONNECTION) and target.startswith(CYCLE):
            found.append(f"line {line}: {dotted} (the connection) imports {target}, past the seam and dispatch")
    return found


@pytest.mark.parametrize("dotted,path", list(modules()), ids=[name for name, _ in modules()])
def test_the_cycles_never_name_the_connection(dotted, path):
    assert seam_violations(dotted, path.read_text(), path.name == "__init__.py") == []


def test_the_seam_rule_can_fail():
    assert seam_violations("server.cycle.wsgi", "from ..connection.protocol import HTTPProtocol\n")
    assert seam_violations(
        "server.cycle.wsgi", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..dispatch import Arrival\n"
    )
    assert seam_violations("server.cycle.asgi", "def f():\n    from ..connection import flow\n")
    assert seam_violations("server.seam", "from .context import ServerContext\n")
    assert seam_violations("server.connection.protocol", "from ..cycle.wsgi import WSGICycle\n")
    assert not seam_violations("server.connection.protocol", "from ..seam import Cycle\n")
    assert not seam_violations("server.cycle.wsgi", "from ..seam import Connection\n")


def import_graph() -> Dict[str, Set[str]]:
    names = {name for name, _ in modules()}
    graph: Dict[str, Set[str]] = {}
    for dotted, path in modules():
        found = imports_of(dotted, path.read_text(), path.name == "__init__.py")
        graph[dotted] = {target for target, _ in found if target in names and target != dotted}
    return graph


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_a_circle_is_found_whatever_kind_of_import_closes_it():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    source = "def f():\n    from .cycle.wsgi import WSGICycle\n"  # as if the context did this
    graph["server.context"] |= {target for target, _ in imports_of("server.context", source)}
    assert any("server.context" in circle for circle in circles(graph))
