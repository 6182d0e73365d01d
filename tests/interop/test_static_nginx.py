"""--static against a real nginx serving the same directory (``alias``, ``gzip_static on``): the
same requests get the same status, the headers that matter and the same bytes, on both loops.

Where the two differ on purpose, the table says so (``DIFFERENCES``): several ranges (nginx
answers ``multipart/byteranges``, we answer 200 with the whole file, as docs/static.md says), and
dotfiles (nginx serves ``.env`` unless told not to; we never do). Validators differ in form (nginx's
ETag is mtime-size in hex seconds, ours in nanoseconds), so each server's conditional requests
carry its own. Skipped when nginx is not installed; .ci/run installs it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from tests.helpers import WAIT, Reader, Response, connect, free_port, wait_accepting

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
if NGINX is None and os.environ.get("REQUIRE_NGINX_TESTS"):
    raise RuntimeError("REQUIRE_NGINX_TESTS is set (as in CI) but nginx is not installed")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")

BIG = os.urandom(2 * 1024 * 1024 + 3)
CSS = b"body { color: red }\n" * 50


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_bytes(CSS)
    (root / "css" / "app.css.gz").write_bytes(gzip.compress(CSS))
    (root / "big.bin").write_bytes(BIG)
    (root / "empty.txt").write_bytes(b"")
    (root / ".env").write_bytes(b"SECRET=1\n")
    return root


@pytest.fixture
def nginx(tmp_path: Path, site: Path):
    port = free_port()
    folder = tmp_path / "nginx"
    folder.mkdir()
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / name).mkdir()
    (folder / "nginx.conf").write_text(
        f"""
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    types {{ text/css css; application/octet-stream bin; text/plain txt; }}
    charset utf-8;
    charset_types text/css text/plain;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{
            alias {site}/;
            gzip_static on;
            gzip_vary on;
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen([str(NGINX), "-c", str(folder / "nginx.conf"), "-p", str(folder)], stderr=subprocess.PIPE)
    wait_accepting(port, proc, "nginx")
    yield port
    proc.terminate()
    proc.communicate(timeout=WAIT)


def ask(port: int, path: str, headers: Dict[str, str], method: str = "GET") -> Response:
    lines = [f"{method} {path} HTTP/1.1", "Host: t", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    with connect(port) as sock:
        sock.sendall("\r\n".join(lines).encode())
        return Reader(sock).response(head_request=method == "HEAD")


# (what, method, path, headers); a header value "{etag}" / "{last-modified}" is that server's own.
CASES: List[Tuple[str, str, str, Dict[str, str]]] = [
    ("get", "GET", "/static/css/app.css", {}),
    ("head", "HEAD", "/static/css/app.css", {}),
    ("big", "GET", "/static/big.bin", {}),
    ("empty", "GET", "/static/empty.txt", {}),
    ("gzip", "GET", "/static/css/app.css", {"Accept-Encoding": "gzip"}),
    ("missing", "GET", "/static/css/nope.css", {}),
    ("range", "GET", "/static/big.bin", {"Range": "bytes=100-199"}),
    ("range-open", "GET", "/static/big.bin", {"Range": "bytes=2097000-"}),
    ("range-suffix", "GET", "/static/big.bin", {"Range": "bytes=-10"}),
    ("range-past", "GET", "/static/big.bin", {"Range": "bytes=9999999-"}),
    ("range-garbage", "GET", "/static/big.bin", {"Range": "bytes=x-y"}),
    ("range-several", "GET", "/static/big.bin", {"Range": "bytes=0-1,10-11"}),
    ("if-none-match", "GET", "/static/css/app.css", {"If-None-Match": "{etag}"}),
    ("if-none-match-other", "GET", "/static/css/app.css", {"If-None-Match": '"other"'}),
    ("if-modified-since", "GET", "/static/css/app.css", {"If-Modified-Since": "{last-modified}"}),
    ("if-modified-since-old", "GET", "/static/css/app.css", {"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
    ("if-match-other", "GET", "/static/css/app.css", {"If-Match": '"other"'}),
    ("if-unmodified-since-old", "GET", "/static/css/app.css", {"If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
    ("if-range-current", "GET", "/static/big.bin", {"Range": "bytes=0-9", "If-Range": "{etag}"}),
    ("if-range-old", "GET", "/static/big.bin", {"Range": "bytes=0-9", "If-Range": '"old"'}),
    ("dotfile", "GET", "/static/.env", {}),
    ("post", "POST", "/static/css/app.css", {"Content-Length": "0"}),
]
# Where we differ on purpose: what nginx answers, what we answer.
DIFFERENCES = {
    "range-several": ((206, "multipart/byteranges"), (200, "the whole file")),
    # RFC 9110 §14.2 lets a server ignore or reject a Range it cannot parse: nginx rejects it,
    # we ignore it (as Apache does), so a client with a bad Range still gets the file.
    "range-garbage": ((416, "rejected"), (200, "the whole file")),
    "dotfile": ((200, "the file"), (404, "never served")),
}
HEADERS = (b"content-length", b"content-range", b"content-encoding")


def _fill(headers: Dict[str, str], first: Response) -> Dict[str, str]:
    own = {"{etag}": first.header(b"etag"), "{last-modified}": first.header(b"last-modified")}
    filled = {}
    for name, value in headers.items():
        filled[name] = (own[value] or b"").decode() if value in own else value
    return filled


@pytest.mark.parametrize("what, method, path, headers", CASES, ids=[case[0] for case in CASES])
def test_the_same_requests_get_the_same_answers(serve, site, nginx, what, method, path, headers):
    ours = serve(lambda e, s: [], static=(f"/static={site}",)).port
    answers: List[Response] = []
    for port in (nginx, ours):
        first = ask(port, path.split("?")[0], {})
        answers.append(ask(port, path, _fill(headers, first), method))
    theirs, mine = answers
    if what in DIFFERENCES:
        (their_status, _), (my_status, _) = DIFFERENCES[what]
        assert (theirs.status, mine.status) == (their_status, my_status)
        return
    assert mine.status == theirs.status, (theirs.raw[:300], mine.raw[:300])
    if mine.status in (200, 206):
        assert mine.body == theirs.body
    for name in HEADERS:
        if name == b"content-length" and mine.status >= 400:
            continue  # (error pages: nginx's is HTML, ours is a line of text)
        assert mine.header(name) == theirs.header(name), name
    if mine.status in (200, 206, 304):
        assert mine.header(b"etag") is not None and mine.header(b"last-modified") == theirs.header(b"last-modified")
    if theirs.header(b"vary") is not None:
        assert mine.header(b"vary") == theirs.header(b"vary")
    if theirs.header(b"accept-ranges") is not None:  # (we also say it on 206s and on encoded copies)
        assert mine.header(b"accept-ranges") == theirs.header(b"accept-ranges")


def test_content_types_agree(serve, site, nginx):
    ours = serve(lambda e, s: [], static=(f"/static={site}",)).port
    for path in ("/static/css/app.css", "/static/big.bin", "/static/empty.txt"):
        types: List[Optional[bytes]] = [ask(port, path, {}).header(b"content-type") for port in (nginx, ours)]
        assert types[0] is not None and types[1] is not None
        assert types[0].replace(b" ", b"").lower() == types[1].replace(b" ", b"").lower(), path
