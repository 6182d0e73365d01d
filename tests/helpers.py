"""Test helpers: run a server on its own loop thread, speak raw HTTP to it."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import trustme

from asyncwsgi import Server, start_server
from asyncwsgi.process.loops import resolve_loop

WAIT = 10.0  # the bound on every wait in the tests, in seconds


class ServerThread:
    """An asyncwsgi server on a fresh event loop of the chosen kind, in a background thread."""

    def __init__(self, app: Any, loop: str = "asyncio", **options: Any) -> None:
        options.setdefault("port", 0)
        options.setdefault("access_log", False)
        self.app = app
        self.options = options
        _, factory = resolve_loop(loop)
        self.loop = factory()
        self.loop.set_debug(True)  # asyncio reports never-retrieved exceptions and unclosed resources
        self.server: Optional[Server] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="test-server-loop", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(WAIT), "server did not start"
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(start_server(self.app, **self.options))
        except BaseException as exc:
            self._error = exc
            self.loop.close()  # (left open, its self-pipe fails a later test with a ResourceWarning)
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the loop thread and return its result."""
        future = asyncio.run_coroutine_threadsafe(_call(fn), self.loop)
        return future.result(WAIT)

    def stop(self, timeout: float = WAIT) -> None:
        if not self._thread.is_alive():
            return
        if self.server is not None:
            future = asyncio.run_coroutine_threadsafe(_close(self.server), self.loop)
            future.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "server loop thread did not stop"


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


async def _close(server: Server) -> None:
    server.close()
    await server.wait_closed()


def connect(port: int, timeout: float = WAIT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


@dataclass
class Response:
    status: int
    reason: bytes
    version: bytes
    headers: List[Tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    trailers: List[Tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> Optional[bytes]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return b",".join(values) if values else None

    @property
    def header_names(self) -> List[bytes]:
        return [k.lower() for k, _ in self.headers]


class Reader:
    """Reads HTTP/1.1 responses off a socket, byte-exact, supporting pipelining."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.received = b""  # everything read so far, for byte-level assertions
        self.eof = False

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        self.received += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed mid-line; have {self.buf!r}")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed mid-body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _fields(self, raw_parts: List[bytes]) -> List[Tuple[bytes, bytes]]:
        """A header (or trailer) block, up to and including its blank line."""
        fields: List[Tuple[bytes, bytes]] = []
        while True:
            line = self._line()
            raw_parts.append(line + b"\r\n")
            if not line:
                return fields
            name, _, value = line.partition(b":")
            fields.append((name, value.strip()))

    def response(self, head_request: bool = False) -> Response:
        raw_parts: List[bytes] = []
        status_line = self._line()
        raw_parts.append(status_line + b"\r\n")
        version, code, reason = [*status_line.split(b" ", 2), b""][:3]
        headers = self._fields(raw_parts)
        resp = Response(int(code), reason, version, headers, b"", b"")
        status = resp.status
        body = b""
        if head_request or status in (204, 304) or 100 <= status < 200:
            pass
        elif resp.header(b"transfer-encoding") == b"chunked":
            while True:
                size_line = self._line()
                raw_parts.append(size_line + b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    resp.trailers = self._fields(raw_parts)
                    break
                chunk = self._exact(size)
                body += chunk
                raw_parts.append(chunk + self._exact(2))
        elif resp.header(b"content-length") is not None:
            body = self._exact(int(resp.header(b"content-length") or 0))
            raw_parts.append(body)
        else:  # close-delimited
            while self._fill():
                pass
            body, self.buf = self.buf, b""
            raw_parts.append(body)
        resp.body = body
        resp.raw = b"".join(raw_parts)
        return resp

    def closed(self, timeout: float = WAIT) -> bool:
        """True once the server has closed the connection (EOF or reset) with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
        except ConnectionResetError:
            return True
        return self.eof and not self.buf


def request(port: int, data: bytes, head_request: bool = False) -> Response:
    """Send raw bytes on a new connection and read one response."""
    with connect(port) as sock:
        sock.sendall(data)
        return Reader(sock).response(head_request=head_request)


def get(path: str = "/", host: bytes = b"t", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


def slow_reader(port: int, path: str = "/") -> socket.socket:
    """A client that asks for a response and then reads nothing (a small receive window)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    sock.sendall(get(path))
    return sock


def thread_names() -> Dict[str, int]:
    names: Dict[str, int] = {}
    for thread in threading.enumerate():
        key = thread.name.rsplit("-", 1)[0]
        names[key] = names.get(key, 0) + 1
    return names


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value's truth."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def assert_refused(port: int, raw: bytes, status: int) -> Response:
    """Send ``raw`` on a new connection: it must get ``status``, ``Connection: close`` and a close."""
    with connect(port) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before reading all of a large request
        reader = Reader(sock)
        resp = reader.response()
        assert resp.status == status, resp.raw
        assert resp.header(b"connection") == b"close"
        assert reader.closed()
    return resp


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a program that must be told its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port: int, proc: Any, name: str, timeout: float = WAIT) -> None:
    """Until ``proc`` (a Popen with stderr=PIPE) accepts on 127.0.0.1:``port``; fail if it exits."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"{name} exited: {stderr.decode() if isinstance(stderr, bytes) else stderr}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{name} did not start")


class Load:
    """Calls ``ask`` in a loop on ``threads`` threads until stopped, keeping every answer and
    every failure (an exception ``ask`` raised): for "no request fails while ..." tests."""

    def __init__(self, ask: Callable[[], Any], threads: int = 1) -> None:
        self.ask = ask
        self.answers: List[Any] = []
        self.failures: List[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    @property
    def ok(self) -> int:
        return len(self.answers)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self.ask())
            except Exception as exc:  # every failure is a test failure
                self.failures.append(repr(exc))

    def until(self, more: int, timeout: float = 2 * WAIT) -> None:
        """Until ``more`` further answers have come (or failures pile up)."""
        target = self.ok + more
        assert wait_for(lambda: self.ok >= target or len(self.failures) > 20, timeout=timeout), self.ok

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:port (one per worker with SO_REUSEPORT)."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port:
                count += 1
    return count


def children(pid: int) -> Set[int]:
    """The live child processes of ``pid``, by each process's parent in /proc/N/stat.

    (Reading /proc/PID/task/*/children instead gave partial sets: a task that ended during the
    scan ended it early, and children are listed under the thread that forked them.)"""
    found: Set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it exited meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ")"
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry))
    return found


def tls_files(folder: Path) -> Tuple[str, str, ssl.SSLContext]:
    """A server certificate for 127.0.0.1 from a new CA: its certfile and keyfile in ``folder``,
    and a client context that trusts it."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return str(certfile), str(keyfile), context
