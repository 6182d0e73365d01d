"""Copy the public request corpora that tests/server/test_corpora.py replays into tests/corpora/.

Run with the two repositories checked out somewhere (paths as arguments). It copies their request
files byte for byte with their licence texts, and writes a small table per corpus of what our
test needs and the files do not say in one place (gunicorn's expected exception and the
non-default gunicorn settings a case asks for, read from the case's .py file as text; the
.py files themselves are not copied).

    python scripts/import_corpora.py GUNICORN_CHECKOUT LLHTTP_CHECKOUT
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tests" / "corpora"


def commit_of(repo: Path) -> str:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def import_gunicorn(repo: Path) -> None:
    out = OUT / "gunicorn"
    shutil.rmtree(out, ignore_errors=True)
    rows = ["# case\tverdict\tgunicorn expects\tnon-default gunicorn settings"]
    for verdict in ("valid", "invalid"):
        (out / verdict).mkdir(parents=True)
        for http in sorted((repo / "tests" / "requests" / verdict).glob("*.http")):
            shutil.copyfile(http, out / verdict / http.name)
            expect = http.with_suffix(".py").read_text()
            calls = re.findall(r"cfg\.set\(['\"](\w+)['\"],\s*([^)]*)\)", expect)
            settings = ",".join(f"{name}={value.strip()}" for name, value in calls)
            match = re.search(r"^request\s*=\s*(\w+)", expect, re.MULTILINE)
            raised = match.group(1) if verdict == "invalid" and match else "-"
            rows.append(f"{verdict}/{http.stem}\t{verdict}\t{raised}\t{settings or '-'}")
    (out / "cases.tsv").write_text("\n".join(rows) + "\n")
    shutil.copyfile(repo / "LICENSE", out / "LICENSE")
    shutil.copyfile(repo / "NOTICE", out / "NOTICE")
    (out / "SOURCE").write_text(f"https://github.com/benoitc/gunicorn tests/requests at {commit_of(repo)}\n")


def import_llhttp(repo: Path) -> None:
    out = OUT / "llhttp"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for md in sorted((repo / "test" / "request").glob("*.md")):
        shutil.copyfile(md, out / md.name)
    shutil.copyfile(repo / "LICENSE", out / "LICENSE")
    (out / "SOURCE").write_text(f"https://github.com/nodejs/llhttp test/request at {commit_of(repo)}\n")


if __name__ == "__main__":
    import_gunicorn(Path(sys.argv[1]))
    import_llhttp(Path(sys.argv[2]))
