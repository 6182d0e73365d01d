"""docs/install.md against pyproject.toml: the name it tells users to install, and its extras."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = (ROOT / "pyproject.toml").read_text()
INSTALL = (ROOT / "docs" / "install.md").read_text()


def _section(name: str) -> str:
    return PYPROJECT.split(f"[{name}]\n", 1)[1].split("\n[", 1)[0]


def test_the_page_names_the_distribution_pyproject_builds():
    name = re.search(r'^name = "([^"]+)"', _section("project"), re.M)
    assert name and name.group(1) == "asyncwsgi-server"
    assert f"**`{name.group(1)}`**" in INSTALL
    assert "asyncwsgi_server-0.1.0-py3-none-any.whl" in INSTALL  # the wheel name a build gives this version
    assert '__version__ = "0.1.0"' in (ROOT / "asyncwsgi" / "__init__.py").read_text()


def test_every_user_extra_is_in_the_table_and_no_other():
    extras = set(re.findall(r"^([a-z]+) = \[", _section("project.optional-dependencies"), re.M))
    documented = set(re.findall(r"^\| `([a-z]+)` \|", INSTALL, re.M))
    assert documented == extras - {"test", "lint", "docs"}


def test_no_page_installs_the_other_project():
    """`pip install asyncwsgi` (or with extras) installs an unrelated project from the index."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for line in page.read_text().splitlines():
            assert not re.search(r"pip install[^\n]*['\" ]asyncwsgi(\[|['\" ]|$)", line), f"{page.name}: {line}"
