"""A load generator that records every request's outcome, for "no request is lost while ..." tests.

Each client thread keeps one HTTP/1.1 connection alive for as long as the server does (like a
browser or a proxy's upstream pool) and cycles through a mix of requests. A request counts as
failed when it was sent and no whole response came back (a reset, or a close before the answer):
what a client sees when a server drops a request it had accepted. A response that says
``Connection: close`` is a success; the client reconnects for the next one.
"""

from __future__ import annotations

import http.client
import threading
from typing import Dict, List, Optional, Tuple

MIX: List[Tuple[str, str, Optional[bytes], int]] = [
    ("GET", "/fast", None, 0),
    ("GET", "/slow", None, 4),
    ("POST", "/upload", b"u" * 65536, 5),
    ("GET", "/download", None, 256 * 1024),
    ("GET", "/fast", None, 0),
    ("GET", "/stream", None, 2000),
]


class Recorder:
    def __init__(self, port: int, clients: int = 16) -> None:
        self.port = port
        self.ok = 0
        self.failures: List[str] = []
        self.statuses: Dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        for thread in self._threads:
            thread.start()

    def _client(self, index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        step = index
        while not self._stop.is_set():
            method, path, body, size = MIX[step % len(MIX)]
            step += 1
            try:
                conn.request(method, path, body=body)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failures.append(f"{method} {path}: {exc!r}")
                conn.close()
                continue
            with self._lock:
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.status == 200 and (not size or len(data) == size or path == "/fast"):
                    self.ok += 1
                else:
                    self.failures.append(f"{method} {path}: {response.status} with {len(data)} bytes")
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
