"""docs/how-it-works.md against the code: its module table names every module once, with the
thread each module's docstring says it runs on, and its layer tree names every folder; and every
module's docstring says its thread in one spelling."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

from tests.proc import ROOT

PACKAGE = ROOT / "asyncwsgi"
PAGE = (ROOT / "docs" / "how-it-works.md").read_text()
TAGS = ("loop", "thread", "both", "main", "any")
# [loop], or [main: at startup]: one of the tags, then optionally a colon and a detail.
TAG_RE = re.compile(r"\[(" + "|".join(TAGS) + r")(?::[^\]]*)?\]")


def module_paths() -> List[str]:
    """Every module, relative to the package; a subpackage's __init__ speaks for its folder."""
    paths = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.endswith("/__init__.py"):
            continue
        paths.append(relative)
    return paths


def tag_of(path: Path) -> str:
    """The thread tag in the first paragraph of a module's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = doc.split("\n\n")[0]
    found = TAG_RE.findall(first)
    assert len(found) == 1, f"{path.relative_to(ROOT)}: one thread tag ({', '.join(TAGS)}) in its first paragraph"
    return str(found[0])


def table() -> Dict[str, Set[str]]:
    """Each module the table names, with the threads its row says."""
    rows: Dict[str, Set[str]] = {}
    for line in PAGE.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        threads = {t.strip() for t in cells[1].split("/")}
        for name in re.findall(r"`([\w/]+\.py)`", cells[0]):
            assert name not in rows, f"{name} is in two rows of the module table"
            rows[name] = threads
    return rows


def test_every_module_says_its_thread_in_one_spelling():
    for path in sorted(PACKAGE.rglob("*.py")):
        assert tag_of(path) in TAGS


def test_the_module_table_names_every_module_and_nothing_else():
    named = set(table())
    modules = set(module_paths())
    assert modules - named == set(), "modules missing from docs/how-it-works.md's table"
    assert named - modules == set(), "the table names modules that do not exist"


def test_each_row_says_the_threads_its_modules_say():
    for name, threads in table().items():
        assert tag_of(PACKAGE / name) in threads, f"{name}: the table says {threads}"


def test_the_layer_tree_names_every_folder():
    tree = PAGE[PAGE.index("```\nasyncwsgi/") : PAGE.index("```", PAGE.index("```\nasyncwsgi/") + 3)]
    folders = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"}
    for folder in folders:
        leaf = folder.split("/")[-1]
        assert f"{leaf}/" in tree, f"the layer tree does not name {folder}/"


def test_the_rules_can_fail():
    """A docstring with two tags, or none, or a misspelt one, is caught."""
    assert TAG_RE.findall("Pure. [loop] and [thread]") == ["loop", "thread"]
    assert TAG_RE.findall("Runs on the main thread. [main thread]") == []
    assert TAG_RE.findall("[both: admission on the loop]") == ["both"]
