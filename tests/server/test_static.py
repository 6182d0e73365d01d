"""--static PREFIX=DIR end to end over real sockets, on both loops: what is served and how, what is
never served, conditional and range requests, precompressed copies, files sent to slow readers
without a thread, a file changed under a download, HEAD, pipelining and TLS."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from asyncwsgi import ConfigError, start_server
from tests.helpers import WAIT, Reader, connect, get, request, tls_files, wait_for

BIG = os.urandom(3 * 1024 * 1024 + 11)


def app(environ, start_response):
    body = f"app {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_text("body { color: red }\n")
    (root / "css" / "app.3f2a9c1b0d4e.css").write_text("body { color: blue }\n")
    (root / "big.bin").write_bytes(BIG)
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / "script.js").write_text("console.log('plain')\n")
    (root / "script.js.gz").write_bytes(gzip.compress(b"console.log('plain')\n"))
    (root / "script.js.br").write_bytes(b"not really brotli, but a different file\n")
    (tmp_path / "outside.txt").write_text("SECRET=2\n")
    os.symlink(tmp_path / "outside.txt", root / "link-out.txt")
    return root


def static(srv_factory: Any, site: Path, **options: Any) -> Any:
    return srv_factory(app, static=(f"/static={site}",), **options)


def raw_get(path: str, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + path.encode("latin-1") + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


def test_a_file_is_served_with_its_headers(serve, site):
    srv = static(serve, site)
    resp = request(srv.port, raw_get("/static/css/app.css"))
    assert (resp.status, resp.body) == (200, b"body { color: red }\n")
    info = os.stat(site / "css" / "app.css")
    assert resp.header(b"content-type") == b"text/css; charset=utf-8"
    assert resp.header(b"content-length") == b"20"
    assert resp.header(b"etag") == b'"%x-%x"' % (info.st_mtime_ns, info.st_size)
    assert resp.header(b"last-modified") is not None and resp.header(b"accept-ranges") == b"bytes"
    assert resp.header(b"cache-control") == b"public, max-age=60"
    hashed = request(srv.port, raw_get("/static/css/app.3f2a9c1b0d4e.css"))
    assert hashed.header(b"cache-control") == b"public, max-age=31536000, immutable"


def test_static_comes_before_the_app_and_its_neighbours_go_to_it(serve, site):
    srv = static(serve, site)
    assert request(srv.port, raw_get("/staticfiles/x")).body == b"app /staticfiles/x"
    assert request(srv.port, raw_get("/other")).body == b"app /other"
    assert request(srv.port, raw_get("/static/missing.css")).status == 404


def test_head_has_the_headers_of_get_and_keep_alive_and_pipelining_hold(serve, site):
    srv = static(serve, site)
    with connect(srv.port) as sock:
        sock.sendall(
            raw_get("/static/css/app.css", method=b"HEAD") + raw_get("/static/big.bin") + raw_get("/static/css/app.css")
        )
        reader = Reader(sock)
        head = reader.response(head_request=True)
        big = reader.response()
        again = reader.response()
    assert head.status == 200 and head.body == b"" and head.header(b"content-length") == b"20"
    assert big.body == BIG and again.body == b"body { color: red }\n"
    assert head.header(b"etag") == again.header(b"etag")


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"OPTIONS"])
def test_other_methods_get_405_with_allow(serve, site, method):
    srv = static(serve, site)
    extra = b"Content-Length: 3\r\n" if method in (b"POST", b"PUT") else b""
    with connect(srv.port) as sock:
        sock.sendall(raw_get("/static/css/app.css", extra, method) + (b"abc" if extra else b"") + get("/after"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == 405 and resp.header(b"allow") == b"GET, HEAD"
        assert reader.response().body == b"app /after"  # the connection goes on


TRAVERSALS = [
    "/static/../outside.txt",
    "/static/%2e%2e/outside.txt",
    "/static/%2E%2E%2Foutside.txt",
    "/static/css/..%2f..%2foutside.txt",
    "/static/css/%2e%2e/%2e%2e/outside.txt",
    "/static/%c0%ae%c0%ae/outside.txt",
    "/static/..%5coutside.txt",
    "/static/%5c..%5coutside.txt",
    "/static/css/app.css%00.png",
    "/static/.env",
    "/static/%2eenv",
    "/static/link-out.txt",
    "/static//..//outside.txt",
    "/static/%252e%252e/outside.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_directory_or_hidden_is_served(serve, site, path):
    srv = static(serve, site)
    with connect(srv.port) as sock:
        sock.sendall(raw_get(path) + raw_get("/static/css/app.css"))
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status in (400, 404), resp.raw
        assert b"SECRET" not in resp.raw
        if resp.status == 404:  # (a 400 ends the connection; a 404 does not)
            assert reader.response().status == 200


def test_symlinks_out_are_served_only_when_asked(serve, site):
    srv = static(serve, site, static_follow_symlinks=True)
    assert request(srv.port, raw_get("/static/link-out.txt")).body == b"SECRET=2\n"


def test_a_directory_is_served_as_its_index_only_when_asked(serve, site):
    srv = static(serve, site)
    assert request(srv.port, raw_get("/static/docs/")).status == 404
    srv = static(serve, site, static_index=True)
    moved = request(srv.port, raw_get("/static/docs?x=1"))
    assert moved.status == 301 and moved.header(b"location") == b"/static/docs/?x=1"
    index = request(srv.port, raw_get("/static/docs/"))
    assert (index.status, index.body) == (200, b"<h1>docs</h1>\n")
    assert index.header(b"content-type") == b"text/html; charset=utf-8"


def test_conditional_requests(serve, site):
    srv = static(serve, site)
    first = request(srv.port, raw_get("/static/css/app.css"))
    tag = first.header(b"etag")
    modified = first.header(b"last-modified")
    assert tag is not None and modified is not None
    not_modified = request(srv.port, raw_get("/static/css/app.css", b"If-None-Match: " + tag + b"\r\n"))
    assert not_modified.status == 304 and not_modified.body == b"" and not_modified.header(b"etag") == tag
    assert not_modified.header(b"content-length") is None
    since = request(srv.port, raw_get("/static/css/app.css", b"If-Modified-Since: " + modified + b"\r\n"))
    assert since.status == 304
    changed = request(srv.port, raw_get("/static/css/app.css", b'If-None-Match: "other"\r\n'))
    assert changed.status == 200
    failed = request(srv.port, raw_get("/static/css/app.css", b'If-Match: "other"\r\n'))
    assert failed.status == 412
    old = b"If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
    assert request(srv.port, raw_get("/static/css/app.css", old)).status == 412


def test_range_requests(serve, site):
    srv = static(serve, site)
    size = len(BIG)
    part = request(srv.port, raw_get("/static/big.bin", b"Range: bytes=10-19\r\n"))
    assert (part.status, part.body) == (206, BIG[10:20])
    assert part.header(b"content-range") == b"bytes 10-19/%d" % size and part.header(b"content-length") == b"10"
    tail = request(srv.port, raw_get("/static/big.bin", b"Range: bytes=-5\r\n"))
    assert (tail.status, tail.body) == (206, BIG[-5:])
    rest = request(srv.port, raw_get("/static/big.bin", b"Range: bytes=%d-\r\n" % (size - 100)))
    assert rest.body == BIG[-100:]
    past = request(srv.port, raw_get("/static/big.bin", b"Range: bytes=%d-\r\n" % size))
    assert past.status == 416 and past.header(b"content-range") == b"bytes */%d" % size
    several = request(srv.port, raw_get("/static/big.bin", b"Range: bytes=0-1,5-6\r\n"))
    assert (several.status, len(several.body)) == (200, size)
    tag = part.header(b"etag") or b""
    kept = request(srv.port, raw_get("/static/big.bin", b"Range: bytes=0-0\r\nIf-Range: " + tag + b"\r\n"))
    assert (kept.status, kept.body) == (206, BIG[:1])
    stale = request(srv.port, raw_get("/static/big.bin", b'Range: bytes=0-0\r\nIf-Range: "old"\r\n'))
    assert (stale.status, len(stale.body)) == (200, size)


def test_precompressed_copies_by_accept_encoding(serve, site):
    srv = static(serve, site)
    plain = request(srv.port, raw_get("/static/script.js"))
    assert plain.body == b"console.log('plain')\n" and plain.header(b"content-encoding") is None
    assert plain.header(b"vary") == b"Accept-Encoding"
    gz = request(srv.port, raw_get("/static/script.js", b"Accept-Encoding: gzip\r\n"))
    assert gz.header(b"content-encoding") == b"gzip" and gzip.decompress(gz.body) == plain.body
    assert gz.header(b"content-type") == b"text/javascript; charset=utf-8" and gz.header(b"vary") == b"Accept-Encoding"
    br = request(srv.port, raw_get("/static/script.js", b"Accept-Encoding: gzip, deflate, br\r\n"))
    assert br.header(b"content-encoding") == b"br" and br.body == b"not really brotli, but a different file\n"
    assert len({plain.header(b"etag"), gz.header(b"etag"), br.header(b"etag")}) == 3
    no_vary = request(srv.port, raw_get("/static/css/app.css", b"Accept-Encoding: gzip\r\n"))
    assert no_vary.header(b"vary") is None and no_vary.header(b"content-encoding") is None


def test_a_slow_reader_takes_no_thread_and_gets_every_byte(serve, site):
    srv = static(serve, site, threads=1)
    with connect(srv.port) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        slow.sendall(raw_get("/static/big.bin"))
        time.sleep(0.3)  # the download is stuck on the client's window
        # The one thread is free: the app answers meanwhile.
        assert request(srv.port, get("/app")).body == b"app /app"
        # (Its thread may write the answer before the loop counts the job done.)
        assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 0)
        digest = hashlib.sha256(Reader(slow).response().body).digest()
    assert digest == hashlib.sha256(BIG).digest()


def test_a_file_truncated_under_a_download_never_sends_past_its_length(serve, site):
    srv = static(serve, site)
    path = site / "shrinking.bin"
    size = 64 * 1024 * 1024  # more than the kernel's socket buffers hold: most is still on disk
    with open(path, "wb") as file:
        file.truncate(size)
    with connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(raw_get("/static/shrinking.bin"))
        time.sleep(0.3)
        with open(path, "r+b") as file:
            file.truncate(1024 * 1024)
        reader = Reader(sock)
        with pytest.raises(EOFError):
            reader.response()  # the connection closes: the body ends short, never long
        assert len(reader.received) < size


def test_a_file_replaced_while_sent_is_sent_as_it_was(serve, site):
    srv = static(serve, site)
    path = site / "replaced.bin"
    path.write_bytes(BIG)
    with connect(srv.port) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(raw_get("/static/replaced.bin"))
        time.sleep(0.2)
        (site / "new.bin").write_bytes(b"new")
        os.replace(site / "new.bin", path)
        assert Reader(sock).response().body == BIG
    assert request(srv.port, raw_get("/static/replaced.bin")).body == b"new"


def test_static_requests_are_logged_and_counted(serve, site, caplog):
    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    srv = static(serve, site, access_log=True, stats_path="/_stats")
    request(srv.port, raw_get("/static/css/app.css"))
    request(srv.port, raw_get("/static/nope.css"))
    assert wait_for(lambda: '"GET /static/css/app.css HTTP/1.1" 200 20' in caplog.text)
    assert wait_for(lambda: '"GET /static/nope.css HTTP/1.1" 404' in caplog.text)
    stats = request(srv.port, raw_get("/_stats")).body
    assert b'"2xx": 1' in stats and b'"4xx": 1' in stats


def test_files_are_closed_when_their_responses_end(serve, site):
    srv = static(serve, site)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        request(srv.port, raw_get("/static/css/app.css"))
        request(srv.port, raw_get("/static/big.bin", b"Range: bytes=0-9\r\n"))
    with connect(srv.port) as sock:  # and one abandoned mid-download
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(raw_get("/static/big.bin"))
        sock.recv(1000)
    assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= before + 1)


def test_over_tls_a_file_is_read_and_sent_in_pieces(serve, site, tmp_path):
    certfile, keyfile, context = tls_files(tmp_path)
    srv = static(serve, site, certfile=certfile, keyfile=keyfile)
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=WAIT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(raw_get("/static/big.bin") + raw_get("/static/big.bin", b"Range: bytes=5-9\r\n"))
        reader = Reader(sock)
        assert reader.response().body == BIG
        assert reader.response().body == BIG[5:10]


@pytest.mark.asyncio
async def test_start_server_refuses_a_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        await start_server(app, port=0, static=(f"/static={tmp_path / 'missing'}",))
    with pytest.raises(ConfigError, match="needs --static"):
        await start_server(app, port=0, static_index=True)


def test_a_client_that_reads_nothing_of_a_file_is_cut_off_at_the_write_timeout(serve, site, tmp_path):
    """sendfile waits for the socket under --write-timeout, as the app's writes do: the client
    is aborted, the timeout counted, and the file closed."""
    (site / "huge.bin").write_bytes(os.urandom(16 * 1024 * 1024))  # more than loopback's buffers take
    srv = static(serve, site, write_timeout=0.5, stats_path="/stats")
    request(srv.port, raw_get("/static/css/app.css"))  # (descriptors a first connection opens)
    before = len(os.listdir("/proc/self/fd"))
    with socket.socket() as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        slow.settimeout(WAIT)
        slow.connect(("127.0.0.1", srv.port))
        slow.sendall(raw_get("/static/huge.bin"))
        began = time.monotonic()
        assert wait_for(lambda: json.loads(request(srv.port, raw_get("/stats")).body)["timeouts"]["write"] == 1)
        assert time.monotonic() - began < WAIT / 2
        received = 0
        try:
            while chunk := slow.recv(1 << 20):
                received += len(chunk)
        except ConnectionError:
            pass
        assert received < 16 * 1024 * 1024  # what the kernel held, then the end: cut short
    assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= before)
