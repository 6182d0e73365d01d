"""The cross-thread hand-off module, with a real loop thread and a real thread."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List

import pytest

from asyncwsgi.errors import ClientDisconnected
from asyncwsgi.wsgi import bridge
from asyncwsgi.wsgi.bridge import Delivery, InputStream, OutputChannel


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def on_loop(loop, fn, *args):
    done = threading.Event()
    result: List[Any] = []

    def run():
        result.append(fn(*args))
        done.set()

    loop.call_soon_threadsafe(run)
    assert done.wait(5)
    return result[0]


def in_worker(fn):
    """Run ``fn`` on a separate thread; return (thread, results list)."""
    out: List[Any] = []

    def run():
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_input_read_blocks_until_fed(loop):
    stream = InputStream(loop, 1024, on_resume=lambda: None)
    thread, out = in_worker(lambda: stream.read(5))
    time.sleep(0.05)
    assert not out  # still waiting
    on_loop(loop, stream.feed, b"hel")
    on_loop(loop, stream.feed, b"lo world")
    thread.join(5)
    assert out == [b"hello"]


def test_input_read_all_and_lines(loop):
    stream = InputStream(loop, 1024, on_resume=lambda: None)
    on_loop(loop, stream.feed, b"a\nbb\nccc")
    on_loop(loop, stream.feed_eof)
    assert stream.readline() == b"a\n"
    assert stream.readline(1) == b"b"
    assert stream.readlines() == [b"b\n", b"ccc"]
    assert stream.read() == b""
    assert stream.read(10) == b""


@pytest.mark.parametrize("split", [1, 3, 7, 64])
def test_input_reads_across_chunk_boundaries_return_bytes(loop, split):
    """Chunks are read in place; every read, line or not, still returns exact bytes."""
    body = b"first line\nsecond, longer line\n\nno newline at the end"
    stream = InputStream(loop, 1 << 20, on_resume=lambda: None)
    for start in range(0, len(body), split):
        on_loop(loop, stream.feed, bytearray(body[start : start + split]))  # h11 hands bytearrays
    on_loop(loop, stream.feed_eof)
    out = [stream.read(4), stream.readline(), stream.readline(5), stream.readline(), stream.read(0)]
    out += [stream.readline(), stream.read(3), stream.read(), stream.read(), stream.readline()]
    assert all(type(piece) is bytes for piece in out)
    assert out == [
        b"firs",
        b"t line\n",
        b"secon",
        b"d, longer line\n",
        b"",
        b"\n",
        b"no ",
        b"newline at the end",
        b"",
        b"",
    ]


def test_input_whole_bytes_chunk_is_returned_without_copy(loop):
    stream = InputStream(loop, 1 << 20, on_resume=lambda: None)
    chunk = b"x" * 1000
    on_loop(loop, stream.feed, chunk)
    assert stream.read(1000) is chunk


def test_input_full_buffer_asks_loop_to_pause_then_resume(loop):
    resumed = threading.Event()
    stream = InputStream(loop, 1024, on_resume=resumed.set)
    assert on_loop(loop, stream.feed, b"x" * 1000) is False
    assert on_loop(loop, stream.feed, b"x" * 100) is True  # above the high-water mark
    assert len(stream.read(100)) == 100
    assert not resumed.is_set()  # 1000 left, above half the mark
    stream.read(600)
    assert resumed.wait(5)  # drained to <= 512: loop told to resume reading


def test_input_read_larger_than_buffer_does_not_deadlock(loop):
    """read() wants more than the high-water mark; the loop must be told to resume as it drains."""
    paused = []
    stream = InputStream(loop, 1024, on_resume=lambda: paused.append(False))
    thread, out = in_worker(lambda: stream.read())

    def feed_more():
        for _ in range(50):
            if stream.feed(b"y" * 1000):
                paused.append(True)
        stream.feed_eof()

    on_loop(loop, feed_more)
    thread.join(5)
    assert out == [b"y" * 50_000]


def test_input_first_read_callback_fires_once(loop):
    calls = []
    stream = InputStream(loop, 1024, on_resume=lambda: None, on_first_read=lambda: calls.append(1))
    on_loop(loop, stream.feed, b"abc")
    stream.read(1)
    stream.read(1)
    on_loop(loop, lambda: None)  # flush callbacks
    assert calls == [1]


def test_input_fail_wakes_blocked_reader(loop):
    stream = InputStream(loop, 1024, on_resume=lambda: None)
    thread, out = in_worker(lambda: stream.read(10))
    time.sleep(0.05)
    on_loop(loop, stream.fail, ClientDisconnected("gone"))
    thread.join(5)
    assert isinstance(out[0], ClientDisconnected)


def test_output_send_blocks_while_paused_and_fails_on_close(loop):
    delivered: List[Delivery] = []
    channel = OutputChannel(loop, delivered.append, limit=1024, paused=True)
    thread, out = in_worker(lambda: channel.send(Delivery(None, b"x", False, False), 1))
    time.sleep(0.05)
    assert thread.is_alive() and not delivered  # blocked by the paused transport
    on_loop(loop, channel.resume)
    thread.join(5)
    on_loop(loop, lambda: None)
    assert [d.body for d in delivered] == [b"x"]

    on_loop(loop, channel.pause)
    thread, out = in_worker(lambda: channel.send(Delivery(None, b"y", False, False), 1))
    time.sleep(0.05)
    on_loop(loop, channel.close)
    thread.join(5)
    assert isinstance(out[0], ClientDisconnected)


def test_output_bounds_bytes_in_flight(loop):
    """With the loop not consuming, the worker can get at most limit (+1 message) ahead."""
    delivered: List[Delivery] = []
    channel = OutputChannel(loop, delivered.append, limit=1000, paused=False)
    sent = []

    def produce():
        for i in range(100):
            channel.send(Delivery(None, b"z" * 400, False, False), 400)
            sent.append(i)

    thread, _ = in_worker(produce)
    deadline = time.monotonic() + 5
    while len(sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # give a broken bound the chance to show itself
    assert len(sent) == 3  # 0, 400, 800 in flight pass; at 1200 > 1000 it waits
    for _ in range(100):
        on_loop(loop, channel.written, 400)
        if not thread.is_alive():
            break
        time.sleep(0.001)
    thread.join(5)
    assert len(sent) == 100


def test_finish_never_raises_after_loop_closed():
    loop = asyncio.new_event_loop()
    loop.close()
    channel = OutputChannel(loop, lambda d: None, limit=10, paused=False)
    channel.finish(Delivery(None, b"", True, True))
    with pytest.raises(ClientDisconnected):
        channel.send(Delivery(None, b"x", False, False), 1)


def test_output_wake_ups_are_never_lost_while_the_loop_races_the_thread(loop, monkeypatch):
    """The thread sleeps on a lock the loop releases (written, resume, reply, close). With the
    liveness check pushed out of reach, a lost or doubled wake-up would hang or raise here."""
    monkeypatch.setattr(bridge, "_LIVENESS_CHECK_SECONDS", 60.0)
    count = 3000
    received: List[int] = []

    def sink(delivery: Delivery) -> None:  # [loop], as Exchange.deliver
        received.append(len(delivery.body))
        if len(received) % 7 == 0:
            channel.pause()  # the transport went over its high-water mark...
            loop.call_later(0.0002, channel.resume)  # ...and drained
        loop.call_soon(channel.written, len(delivery.body))

    channel = OutputChannel(loop, sink, limit=100, paused=False)
    gone = []
    watcher = threading.Thread(target=lambda: gone.append(channel.wait_gone(None)), daemon=True)
    watcher.start()

    def produce() -> int:
        for _ in range(count):
            channel.send(Delivery(None, b"w" * 64, False, False), 64)
        return count

    thread, out = in_worker(produce)
    thread.join(20)
    assert out == [count] and not thread.is_alive()
    assert wait_until(lambda: len(received) == count)
    on_loop(loop, channel.close)  # wakes wait_gone's waiter too
    watcher.join(5)
    assert gone == [True]


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()
