"""Unit tests for what static files are served as, and when: ranges (http/ranges.py), conditional
requests (http/preconditions.py), safe resolution (static/resolve.py), the mount table
(static/mounts.py) and representations (static/representation.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncwsgi.errors import ConfigError
from asyncwsgi.http import preconditions, ranges
from asyncwsgi.static.mounts import StaticMounts, parse_spec
from asyncwsgi.static.representation import acceptable_codings, cache_control, content_type, etag, is_hashed
from asyncwsgi.static.resolve import REDIRECT, resolve, variant

# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, size, answer",
    [
        (None, 100, ranges.WHOLE),
        (b"bytes=0-9", 100, (0, 10)),
        (b"bytes=90-", 100, (90, 100)),
        (b"bytes=90-200", 100, (90, 100)),  # past the end: to the end
        (b"bytes=-10", 100, (90, 100)),  # the last 10
        (b"bytes=-200", 100, (0, 100)),
        (b"bytes=99-99", 100, (99, 100)),
        (b"bytes=100-", 100, ranges.UNSATISFIABLE),
        (b"bytes=-0", 100, ranges.UNSATISFIABLE),
        (b"bytes=0-", 0, ranges.UNSATISFIABLE),
        (b"bytes=5-3", 100, ranges.WHOLE),  # last before first: ignored
        (b"bytes=0-1,5-6", 100, ranges.WHOLE),  # several: the whole
        (b"items=0-1", 100, ranges.WHOLE),
        (b"bytes=a-b", 100, ranges.WHOLE),
        (b"bytes=-", 100, ranges.WHOLE),
        (b"bytes=", 100, ranges.WHOLE),
        (b" bytes = 1-2", 100, (1, 3)),
    ],
)
def test_ranges(value, size, answer):
    assert ranges.requested(value, size) == answer


def test_content_range_headers():
    assert ranges.content_range(0, 10, 100) == b"bytes 0-9/100"
    assert ranges.unsatisfied(100) == b"bytes */100"


# --- preconditions ------------------------------------------------------------------------------

TAG = b'"5f-a"'
MODIFIED = 1_700_000_000
BEFORE = preconditions.http_date(MODIFIED - 10)
AT = preconditions.http_date(MODIFIED)


@pytest.mark.parametrize(
    "method, headers, status",
    [
        (b"GET", {}, None),
        (b"GET", {"if_none_match": TAG}, 304),
        (b"GET", {"if_none_match": b'W/"5f-a"'}, 304),  # weak comparison
        (b"GET", {"if_none_match": b'"x", "5f-a"'}, 304),
        (b"GET", {"if_none_match": b"*"}, 304),
        (b"GET", {"if_none_match": b'"x"'}, None),
        (b"HEAD", {"if_none_match": TAG}, 304),
        (b"POST", {"if_none_match": TAG}, 412),
        (b"GET", {"if_modified_since": AT}, 304),
        (b"GET", {"if_modified_since": BEFORE}, None),
        (b"GET", {"if_modified_since": b"yesterday"}, None),  # not a date: ignored
        (b"GET", {"if_none_match": b'"x"', "if_modified_since": AT}, None),  # If-None-Match wins
        (b"GET", {"if_match": TAG}, None),
        (b"GET", {"if_match": b'"x"'}, 412),
        (b"GET", {"if_match": b'W/"5f-a"'}, 412),  # strong comparison
        (b"GET", {"if_match": b"*"}, None),
        (b"GET", {"if_unmodified_since": BEFORE}, 412),
        (b"GET", {"if_unmodified_since": AT}, None),
        (b"GET", {"if_match": TAG, "if_unmodified_since": BEFORE}, None),  # If-Match wins
        (b"GET", {"if_match": b'"x"', "if_none_match": TAG}, 412),  # 412 first
    ],
)
def test_preconditions_in_rfc_order(method, headers, status):
    args = {name: headers.get(name) for name in ("if_match", "if_unmodified_since", "if_none_match")}
    args["if_modified_since"] = headers.get("if_modified_since")
    assert preconditions.evaluate(method, TAG, MODIFIED, **args) == status


def test_if_range():
    now = MODIFIED + 100
    assert preconditions.range_applies(None, TAG, MODIFIED, now)
    assert preconditions.range_applies(TAG, TAG, MODIFIED, now)
    assert not preconditions.range_applies(b'"other"', TAG, MODIFIED, now)
    assert not preconditions.range_applies(b'W/"5f-a"', TAG, MODIFIED, now)
    assert preconditions.range_applies(AT, TAG, MODIFIED, now)
    assert not preconditions.range_applies(BEFORE, TAG, MODIFIED, now)
    assert not preconditions.range_applies(AT, TAG, MODIFIED, MODIFIED + 0.5)  # not yet a strong validator


def test_http_dates_in_all_three_forms():
    assert preconditions.parse_date(b"Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert preconditions.parse_date(b"Sunday, 06-Nov-94 08:49:37 GMT") == 784111777
    assert preconditions.parse_date(b"Sun Nov  6 08:49:37 1994") == 784111777  # asctime's, in GMT
    assert preconditions.parse_date(b"garbage") is None
    assert preconditions.http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"


# --- representation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, hashed",
    [
        ("app.3f2a9c1b0d4e.css", True),  # Django ManifestStaticFilesStorage
        ("main.8f3a2b1c.js", True),  # webpack contenthash
        ("index-BsmFIKk4.js", True),  # Vite
        ("vendor-a1b2c3d4e5f6a7b8.js", True),
        ("app.css", False),
        ("bootstrap-dropdown.js", False),  # a word, not a hash
        ("jquery-3.7.1.min.js", False),
        ("favicon.ico", False),
        ("report-20261207.pdf", False),  # digits only
        ("deadbeef.js", False),  # no separator before it
        ("x-abcdefgh.js", False),  # letters only
    ],
)
def test_hashed_names(name, hashed):
    assert is_hashed(name) is hashed
    assert cache_control(name, b"public, max-age=60") == (
        b"public, max-age=31536000, immutable" if hashed else b"public, max-age=60"
    )


def test_no_cache_control_when_none_is_configured():
    assert cache_control("app.css", b"") is None


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.html", b"text/html; charset=utf-8"),
        ("a.CSS", b"text/css; charset=utf-8"),
        ("a.js", b"text/javascript; charset=utf-8"),
        ("a.woff2", b"font/woff2"),
        ("a.svg", b"image/svg+xml"),
        ("a.unknownext", b"application/octet-stream"),
    ],
)
def test_content_types(name, expected):
    assert content_type(name) == expected


def test_each_coding_has_its_own_etag():
    assert etag(1, 2) == b'"1-2"' and etag(1, 2, b"br") == b'"1-2-br"'


@pytest.mark.parametrize(
    "accept, codings",
    [
        (None, []),
        (b"gzip, deflate, br", [b"br", b"gzip"]),
        (b"gzip", [b"gzip"]),
        (b"br;q=0.5, gzip;q=0.9", [b"gzip", b"br"]),
        (b"br;q=0, gzip", [b"gzip"]),
        (b"*", [b"br", b"gzip"]),
        (b"*;q=0.1, br;q=0", [b"gzip"]),
        (b"identity", []),
        (b"x-gzip", [b"gzip"]),
        (b"gzip;q=abc", []),
    ],
)
def test_acceptable_codings(accept, codings):
    assert acceptable_codings(accept) == codings


# --- the mount table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["static", "/static", "/static=", "static=dir", "/static/=dir", "/=dir", "/a b=dir", "/a/../b=dir"]
)
def test_bad_specs_are_refused(spec):
    with pytest.raises(ConfigError):
        parse_spec(spec)


def test_the_longest_prefix_wins_on_a_segment_boundary(tmp_path: Path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    table = StaticMounts([f"/s={tmp_path / 'a'}", f"/s/deep={tmp_path / 'b'}"])
    match = table.match("/s/deep/x.css")
    assert match is not None and match[0].root.endswith("/b") and match[1] == "/x.css"
    match = table.match("/s/deeper")
    assert match is not None and match[0].root.endswith("/a") and match[1] == "/deeper"
    assert table.match("/sx") is None and table.match("/") is None
    assert table.match("/s") == (table.match("/s/")[0], "")  # type: ignore[index]


def test_a_missing_directory_is_refused_at_startup(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a directory"):
        StaticMounts([f"/s={tmp_path / 'missing'}"])
    with pytest.raises(ConfigError, match="twice"):
        StaticMounts([f"/s={tmp_path}", f"/s={tmp_path}"])


# --- resolution -------------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_text("body{}")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / ".env").write_text("SECRET")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("SECRET")
    (tmp_path / "secret.txt").write_text("SECRET")
    os.symlink(tmp_path / "secret.txt", root / "out.txt")
    os.symlink(root / "css" / "app.css", root / "in.css")
    os.symlink(tmp_path, root / "up")
    (root / "app.css.gz").write_bytes(b"gz")
    os.mkfifo(root / "fifo")
    return root


@pytest.mark.parametrize(
    "rest",
    [
        "/../secret.txt",
        "/css/../../secret.txt",
        "/./css/app.css",
        "/.env",
        "/.git/config",
        "/out.txt",  # a symlink out of the directory
        "/up/secret.txt",  # a symlinked directory out of it
        "/css/app.css\x00.png",
        "/css\\app.css",
        "/%2e%2e/secret.txt",  # (decoded once already: this is a literal name, which does not exist)
        "/\xc0\xae\xc0\xae/secret.txt",  # overlong UTF-8 for '..' (as latin-1 bytes in PATH_INFO)
        "/\xff",
        "/missing.css",
        "/css",  # a directory, without --static-index
        "/fifo",
        "",
    ],
)
def test_nothing_outside_the_directory_or_hidden_is_resolved(site: Path, rest: str):
    root = os.path.realpath(site)
    assert resolve(root, rest, index=False, follow_symlinks=False) is None


def test_files_and_symlinks_inside_are_resolved(site: Path):
    root = os.path.realpath(site)
    assert resolve(root, "/css/app.css", False, False) == os.path.join(root, "css", "app.css")
    assert resolve(root, "//css///app.css", False, False) == os.path.join(root, "css", "app.css")
    assert resolve(root, "/in.css", False, False) == os.path.join(root, "in.css")
    assert resolve(root, "/out.txt", False, follow_symlinks=True) == os.path.join(root, "out.txt")


def test_a_directory_with_index(site: Path):
    root = os.path.realpath(site)
    assert resolve(root, "/docs", index=True, follow_symlinks=False) is REDIRECT
    assert resolve(root, "/docs/", index=True, follow_symlinks=False) == os.path.join(root, "docs", "index.html")
    assert resolve(root, "/css/", index=True, follow_symlinks=False) is None  # no index.html there


def test_precompressed_copies_are_found_safely(site: Path):
    root = os.path.realpath(site)
    assert variant(root, os.path.join(root, "app.css"), ".gz", False) == os.path.join(root, "app.css.gz")
    assert variant(root, os.path.join(root, "app.css"), ".br", False) is None
