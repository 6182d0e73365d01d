"""wsgi.file_wrapper: a regular file goes to the loop, which sends it (by the kernel where it can) while the
app's thread is free; anything else is iterated."""

from __future__ import annotations

import io
import os
import socket
import tempfile
import threading

import pytest

from tests.helpers import Reader, connect, get, wait_for

CONTENT = os.urandom(3 * 1024 * 1024 + 7)


@pytest.fixture(scope="module")
def data_file():
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(CONTENT)
    yield f.name
    os.unlink(f.name)


def file_app(path, offset=0, content_length=None):
    closed = threading.Event()

    def app(environ, start_response):
        f = open(path, "rb")  # noqa: SIM115 (the server closes it, through the file wrapper)
        f.seek(offset)
        headers = [("Content-Type", "application/octet-stream")]
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        start_response("200 OK", headers)
        wrapper = environ["wsgi.file_wrapper"](f, 65536)
        original_close = wrapper.close

        def close():
            original_close()
            closed.set()

        wrapper.close = close
        return wrapper

    app.closed = closed  # type: ignore[attr-defined]
    return app


def test_file_response_whole(serve, data_file):
    app = file_app(data_file)
    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(get("/") + get("/"))
        reader = Reader(sock)
        first = reader.response()
        second = reader.response()  # keep-alive works after a sendfile response
    assert first.body == CONTENT and second.body == CONTENT
    assert first.header(b"content-length") == str(len(CONTENT)).encode()
    assert app.closed.wait(5)


def test_file_response_offset_and_declared_length(serve, data_file):
    srv = serve(file_app(data_file, offset=10, content_length=1000))
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        resp = Reader(sock).response()
    assert resp.body == CONTENT[10:1010]


def test_file_response_head(serve, data_file):
    srv = serve(file_app(data_file))
    with connect(srv.port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/"))
        reader = Reader(sock)
        head = reader.response(head_request=True)
        assert head.header(b"content-length") == str(len(CONTENT)).encode()
        assert reader.response().body == CONTENT


def test_file_like_without_fileno_is_iterated(serve):
    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory" * 1000), 100)

    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        assert Reader(sock).response().body == b"in memory" * 1000


def test_file_response_client_disconnects_midway(serve, data_file):
    app = file_app(data_file)
    srv = serve(app)
    with connect(srv.port) as sock:
        sock.sendall(get("/"))
        sock.recv(1000)
    assert app.closed.wait(5)
    # close() has run on the worker; the job's last hand-off then frees its slot on the loop.
    assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 0)
    with connect(srv.port) as sock:  # still serving
        sock.sendall(get("/"))
        assert Reader(sock).response().body == CONTENT


def test_the_thread_is_free_once_the_file_is_handed_over(serve, tmp_path):
    """A slow reader of a file_wrapper response holds neither a thread nor a pool slot: the
    file goes to the loop, which sends it (by the kernel where it can)."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as file:
        file.truncate(16 * 1024 * 1024)  # more than the socket buffers hold: the client must read
    app = file_app(str(big))

    def routes(environ, start_response):
        if environ["PATH_INFO"] == "/hello":
            start_response("200 OK", [("Content-Length", "2")])
            return [b"hi"]
        return app(environ, start_response)

    srv = serve(routes, threads=1, queue_size=0)
    with connect(srv.port) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        slow.sendall(get("/file"))
        assert app.closed.wait(5)  # the app's close() has run while the client has read nothing
        assert wait_for(lambda: srv.on_loop(lambda: srv.server._ctx.pool.admitted) == 0)
        with connect(srv.port) as other:  # the one thread serves someone else meanwhile
            other.sendall(get("/hello"))
            assert Reader(other).response().body == b"hi"
        received = 0
        while True:  # (counted, not kept: 16 MiB)
            data = slow.recv(1024 * 1024)
            if not data:
                break
            received += len(data)
            if received >= 16 * 1024 * 1024:
                break
        assert received >= 16 * 1024 * 1024  # head and all


def test_file_descriptors_are_not_left_open(serve, data_file):
    srv = serve(file_app(data_file))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        with connect(srv.port) as sock:
            sock.sendall(get("/"))
            assert Reader(sock).response().body == CONTENT
    with connect(srv.port) as sock:  # and one abandoned mid-download
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(get("/"))
        sock.recv(1000)
    assert wait_for(lambda: len(os.listdir("/proc/self/fd")) <= before + 1)
