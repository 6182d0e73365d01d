"""Unit tests for one connection's flow control (asyncwsgi/server/flow.py): read-pause reasons,
the lazy pool pause, the response buffer grant and the write deadline. A minimal FlowControl
subclass and a recording transport; no socket and no running loop."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import pytest

from asyncwsgi.config import Config
from asyncwsgi.server.connection.flow import PAUSE_PIPELINE, PAUSE_REFUSED, FlowControl
from asyncwsgi.server.context import ByteBudget
from asyncwsgi.server.seam import PAUSE_BODY, PAUSE_POOL


class Transport:
    def __init__(self) -> None:
        self.calls: List[str] = []
        self.buffered = 0
        self.closing = False

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return self.closing

    def writelines(self, pieces: List[Any]) -> None:
        self.buffered += sum(len(piece) for piece in pieces)
        self.calls.append("writelines " + "+".join(str(len(piece)) for piece in pieces))

    def write(self, data: Any) -> None:
        self.buffered += len(data)
        self.calls.append(f"write {len(data)}")

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def abort(self) -> None:
        self.calls.append("abort")


class Loop:
    def __init__(self) -> None:
        self.timers: List[Tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any) -> Any:
        self.timers.append((delay, callback))
        return Timer()


class Timer:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Stats:
    def __init__(self) -> None:
        self.timeouts = {"write": 0}


class Context:
    def __init__(self, **options: Any) -> None:
        self.config = Config(**options)
        self.loop = Loop()
        self.stats = Stats()
        self.response_buffers = ByteBudget(self.config.response_buffer_total_bytes)


class Connection(FlowControl):
    __slots__ = ("events", "gone")

    def __init__(self, ctx: Any, client: Optional[Tuple[str, str]] = ("10.0.0.1", "5000")) -> None:
        super().__init__(ctx, client)
        self.transport = Transport()
        self.events: List[str] = []
        self.gone = False

    @property
    def lost(self) -> bool:
        return self.gone

    def _reading_stopped(self) -> None:
        self.events.append("stopped")

    def _reading_restarted(self) -> None:
        self.events.append("restarted")

    def _app_writes_blocked(self) -> None:
        self.events.append("blocked")

    def _app_writes_unblocked(self) -> None:
        self.events.append("unblocked")


def test_reading_resumes_only_when_every_reason_is_gone():
    conn = Connection(Context())
    conn.pause_reading(PAUSE_BODY)
    conn.pause_reading(PAUSE_PIPELINE)
    assert conn.transport.calls == ["pause"]  # one system call for two reasons
    conn.resume_reading(PAUSE_BODY)
    assert conn.transport.calls == ["pause"]  # the pipelined request still holds it
    conn.resume_reading(PAUSE_PIPELINE)
    assert conn.transport.calls == ["pause", "resume"]
    assert conn.events == ["stopped", "restarted"]


def test_waiting_for_a_thread_pauses_only_when_bytes_arrive():
    conn = Connection(Context())
    conn.pause_reading(PAUSE_POOL)
    assert conn.transport.calls == [] and conn.events == ["stopped"]
    assert conn.reading_paused
    conn.pause_if_reading()  # the client sent more while its request waits
    assert conn.transport.calls == ["pause"]
    conn.resume_reading(PAUSE_POOL)
    assert conn.transport.calls == ["pause", "resume"]
    assert not conn.reading_paused


def test_a_lazy_pause_never_paused_needs_no_resume():
    conn = Connection(Context())
    conn.pause_reading(PAUSE_POOL)
    conn.resume_reading(PAUSE_POOL)
    assert conn.transport.calls == []
    assert conn.events == ["stopped", "restarted"]


def test_a_buffered_pipelined_request_is_not_a_pause_the_client_answers_for():
    conn = Connection(Context())
    conn.pause_reading(PAUSE_PIPELINE)
    assert not conn.reading_paused
    conn.pause_reading(PAUSE_REFUSED)
    assert conn.reading_paused


def test_a_closing_transport_is_not_paused_or_resumed():
    conn = Connection(Context())
    conn.transport.closing = True
    conn.pause_reading(PAUSE_BODY)
    conn.resume_reading(PAUSE_BODY)
    assert conn.transport.calls == []


def test_read_everything_drops_all_reasons():
    conn = Connection(Context())
    conn.pause_reading(PAUSE_REFUSED)
    conn._read_everything()
    assert not conn.reading_paused and conn.transport.calls == ["pause", "resume"]
    conn.pause_reading(PAUSE_BODY)  # a new reason pauses again: nothing stale was left
    assert conn.transport.calls[-1] == "pause"


def test_a_full_transport_takes_a_grant_and_blocks_the_app_past_it():
    ctx = Context(output_buffer_bytes=64 * 1024, response_buffer_bytes=1024 * 1024)
    conn = Connection(ctx)
    conn.pause_writing()
    assert ctx.response_buffers.used == 1024 * 1024 and not conn.write_paused
    conn.write(b"x" * (512 * 1024))
    assert not conn.write_paused  # within the grant: the app's thread goes on
    conn.writelines([b"y" * (600 * 1024)])
    assert conn.write_paused and conn.events == ["blocked"]
    conn.resume_writing()
    assert ctx.response_buffers.used == 0 and not conn.write_paused
    assert conn.events == ["blocked", "unblocked"]


def test_with_the_budget_spent_the_app_blocks_at_once():
    ctx = Context(response_buffer_bytes=1024 * 1024, response_buffer_total_bytes=1024 * 1024)
    first, second = Connection(ctx), Connection(ctx)
    first.pause_writing()
    second.pause_writing()
    assert not first.write_paused and second.write_paused
    first._end_flow()  # the first connection is lost: its grant comes back
    assert ctx.response_buffers.used == 0


def test_no_grant_when_response_buffering_is_off():
    ctx = Context(response_buffer_bytes=0)
    conn = Connection(ctx)
    conn.pause_writing()
    assert conn.write_paused and ctx.response_buffers.used == 0


def test_a_client_that_reads_nothing_is_aborted_at_the_write_timeout():
    ctx = Context(write_timeout=7.0, response_buffer_bytes=0)
    conn = Connection(ctx)
    conn.pause_writing()
    [(delay, callback)] = ctx.loop.timers
    assert delay == 7.0
    callback()
    assert conn.transport.calls[-1] == "abort" and ctx.stats.timeouts["write"] == 1


def test_a_client_that_caught_up_is_not_aborted():
    ctx = Context(write_timeout=7.0, response_buffer_bytes=0)
    conn = Connection(ctx)
    conn.pause_writing()
    conn.resume_writing()
    conn._on_write_stalled()  # a timer that fired as it was cancelled
    assert "abort" not in conn.transport.calls


def test_small_pieces_are_joined_into_one_write_and_large_ones_go_in_one_writelines():
    """Large pieces are not copied on uvloop, and never cost a send each: a chunk's size line,
    its data and its CRLF as three writes were three sends (and three segments) per chunk."""

    class UvloopLike(Transport):
        __module__ = "uvloop.loop"  # what the stdlib's writelines lacks: pausing the protocol

    conn = Connection(Context())
    conn.transport = UvloopLike()
    conn.writelines([b"a" * 10, b"b" * 10])
    conn.writelines([b"c" * 10_000, b"", b"d" * 10_000])
    assert conn.transport.calls == ["write 20", "writelines 10000+0+10000"]


def test_large_pieces_are_joined_for_the_stdlib_loop():
    """asyncio's writelines (Python 3.12, 3.13) never pauses the protocol: joined, the pieces
    go through write(), which does."""
    conn = Connection(Context())
    conn.writelines([b"c" * 10_000, b"", b"d" * 10_000])
    assert conn.transport.calls == ["write 20000"]


@pytest.mark.parametrize("client, peer", [(("10.0.0.1", "5000"), "10.0.0.1"), (None, "unix")])
def test_peer_names_the_client(client, peer):
    assert Connection(Context(), client)._peer() == peer
