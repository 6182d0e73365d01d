"""docs/production.md: the command it recommends is one the command accepts, as written."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.proc import ROOT, run_cli

PAGE = (ROOT / "docs" / "production.md").read_text()


def test_the_recommended_command_is_valid(tmp_path: Path):
    block = PAGE.split("```sh\n", 1)[1].split("```", 1)[0]
    argv = shlex.split(block.replace("\\\n", " "))
    assert argv[0] == "asyncwsgi" and argv[1] == "myproject.wsgi:application"
    # The same flags with paths under tmp_path (the static directory must exist), checked by
    # --print-config, which validates every setting and exits.
    (tmp_path / "staticfiles").mkdir()
    args = [a.replace("/srv/myapp", str(tmp_path)).replace("/var/log/myapp", str(tmp_path)) for a in argv[2:]]
    result = run_cli("tests.apps.basic:hello", *args, "--print-config")
    assert result.returncode == 0, result.stderr
    assert "max-requests = 10000" in result.stdout and "workers = 2" in result.stdout
