"""Run the asyncwsgi CLI as a real process and read back where it listens."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, List, Optional

ROOT = Path(__file__).resolve().parent.parent
WAIT = 15.0


class CLIServer:
    def __init__(
        self,
        *args: str,
        env: Optional[dict] = None,
        pass_fds: tuple = (),
        new_session: bool = False,
        python: str = sys.executable,
        preexec: Optional[Callable[[], None]] = None,
    ) -> None:
        self.args = [python, "-m", "asyncwsgi", *args]
        full_env = dict(_clean_environ(), PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=new_session,  # its own process group, as a shell gives a foreground job
            preexec_fn=preexec,  # (e.g. resource limits of the server's own)
            text=True,
        )
        self.lines: List[str] = []
        self._listening = threading.Event()
        self._port: Optional[int] = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"listening on (?:http://\S+:(\d+)|unix:)", line)
            if match:
                if match.group(1):
                    self._port = int(match.group(1))
                self._listening.set()

    @property
    def listening_tcp(self) -> bool:
        return self._port is not None

    @property
    def port(self) -> int:
        """The TCP port the server said it listens on (once ``wait_listening`` has returned)."""
        assert self._port is not None, "the server has not said it listens on a TCP port"
        return self._port

    def wait_listening(self) -> CLIServer:
        if not self._listening.wait(WAIT):
            self.kill()
            raise AssertionError("server did not start:\n" + "\n".join(self.lines))
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        code = self.proc.wait(timeout)
        self._close_pipe()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        self._close_pipe()

    def _close_pipe(self) -> None:
        self._reader.join(WAIT)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def output(self) -> str:
        return "\n".join(self.lines)

    def __enter__(self) -> CLIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _clean_environ() -> dict:
    """The environment without settings (ASYNCWSGI_*, WEB_CONCURRENCY) that would change what is tested."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ASYNCWSGI_") and k != "WEB_CONCURRENCY"}


def run_cli(*args: str, timeout: float = WAIT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asyncwsgi", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_environ(),
    )
