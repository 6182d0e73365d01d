"""Spool files (wsgi/spool.py), and the two pipes that use them (wsgi/bridge.py): a response
that goes on into a file while its client is slow, a request body read back from one."""

from __future__ import annotations

import errno
import logging
import os
import threading
from typing import Any, List

import pytest

from asyncwsgi.config import Config
from asyncwsgi.errors import ClientDisconnected, ConfigError
from asyncwsgi.wsgi.bridge import Delivery, InputStream, OutputChannel
from asyncwsgi.wsgi.spool import SpoolDisk, check_directory
from tests.helpers import wait_for


class NowLoop:
    """Runs callbacks at once on the calling thread: the pipes' loop, for single-thread tests."""

    def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
        callback(*args)

    def is_closed(self) -> bool:
        return False


def contents(fd: int, size: int) -> bytes:
    return os.pread(fd, size, 0)


# --- SpoolDisk and SpoolFile --------------------------------------------------------------------


def test_a_spool_file_has_no_name_and_holds_what_was_appended(tmp_path):
    disk = SpoolDisk(str(tmp_path), 1000)
    spool = disk.new_file(cap=100)
    assert spool is not None
    assert os.listdir(tmp_path) == []
    assert os.fstat(spool.fd).st_nlink == 0  # nothing is left behind if the process dies
    assert spool.append(b"abc") and spool.append(b"defg")
    assert spool.read(100, 0) == b"abcdefg" and spool.read(3, 2) == b"cde"
    assert (disk.bytes, disk.files, disk.bytes_total, disk.files_total) == (7, 1, 7, 1)
    spool.close()
    assert (disk.bytes, disk.files, disk.bytes_total, disk.files_total) == (0, 0, 7, 1)
    assert spool.read(3, 0) == b""  # closed: a late read gets nothing, never another file's bytes
    spool.close()  # twice is harmless
    assert disk.bytes == 0


def test_a_file_takes_nothing_past_its_cap_or_the_disks(tmp_path):
    disk = SpoolDisk(str(tmp_path), 10)
    first = disk.new_file(cap=6)
    second = disk.new_file(cap=100)
    assert first is not None and second is not None
    assert first.append(b"12345")
    assert not first.append(b"67")  # its cap: 6
    assert first.size == 5 and disk.full == 0
    assert second.append(b"abcde")
    assert not second.append(b"f")  # the disk's: 10
    assert disk.full == 1 and disk.bytes == 10
    assert disk.new_file(cap=100) is None  # no room at all: no file is made
    assert disk.files == 2
    first.close()
    assert second.append(b"f")


def test_the_system_temporary_directory_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setattr("asyncwsgi.wsgi.spool.tempfile.gettempdir", lambda: str(tmp_path))
    assert SpoolDisk(None, 10).directory == str(tmp_path)
    assert check_directory(None) is None


def test_without_o_tmpfile_a_named_file_is_made_and_removed(monkeypatch, tmp_path):
    real_open = os.open

    def no_tmpfile(path, flags, *args):
        if flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(errno.EOPNOTSUPP, "not on this file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr("asyncwsgi.wsgi.spool.os.open", no_tmpfile)
    spool = SpoolDisk(str(tmp_path), 100).new_file(10)
    assert spool is not None and os.listdir(tmp_path) == []
    spool.close()


def test_a_directory_that_cannot_take_files_is_reported(tmp_path):
    assert "not a directory" in (check_directory(str(tmp_path / "missing")) or "")
    target = tmp_path / "file"
    target.write_text("x")
    assert "not a directory" in (check_directory(str(target)) or "")
    assert check_directory(str(tmp_path)) is None


def test_a_failing_disk_is_counted_logged_once_and_leaves_the_file_as_it_was(monkeypatch, tmp_path, caplog):
    disk = SpoolDisk(str(tmp_path), 1000)
    spool = disk.new_file(100)
    assert spool is not None and spool.append(b"kept")
    real_pwrite = os.pwrite
    calls: List[int] = []

    def half_then_full(fd, data, offset):
        calls.append(len(data))
        if len(calls) == 1:
            return real_pwrite(fd, bytes(data[:2]), offset)  # a short write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("asyncwsgi.wsgi.spool.os.pwrite", half_then_full)
    caplog.set_level(logging.ERROR, logger="asyncwsgi.error")
    assert not spool.append(b"lost")
    assert not spool.append(b"lost again")
    assert spool.size == 4 and os.fstat(spool.fd).st_size == 4  # cut back to its last whole write
    assert spool.read(100, 0) == b"kept"
    assert disk.errors == 2 and disk.bytes == 4
    assert len([r for r in caplog.records if "spool file write failed" in r.getMessage()]) == 1


def test_a_file_that_cannot_be_made_is_an_error_not_an_exception(tmp_path):
    disk = SpoolDisk(str(tmp_path / "missing"), 1000)
    assert disk.new_file(10) is None
    assert disk.errors == 1 and disk.files == 0


# --- the output channel: a response goes on into a spool file -----------------------------------


def channel_with_spool(tmp_path, cap: int = 1000, capacity: int = 10_000, paused: bool = True):
    disk = SpoolDisk(str(tmp_path), capacity)
    delivered: List[Delivery] = []
    channel = OutputChannel(NowLoop(), delivered.append, limit=100, paused=paused, spool=disk, spool_cap=cap)
    return channel, delivered, disk


def body(d: Delivery) -> bytes:
    """What a delivery carries: its bytes, or its file region's."""
    if d.file is not None:
        return bytes(d.body) + os.pread(d.file.file, d.file.length, d.file.offset)
    return bytes(d.body)


def test_a_paused_send_goes_into_a_spool_file_and_the_job_ends_with_it(tmp_path):
    channel, delivered, disk = channel_with_spool(tmp_path)
    channel.send(Delivery(None, b"first ", False, False), 6)  # paused: no wait, into the file
    channel.resume()
    channel.send(Delivery(None, b"second ", False, False), 7)  # the file is open: in order, into it
    assert delivered == []
    channel.finish(Delivery(None, b"last", True, True))
    (final,) = delivered
    assert final.last and final.end and final.body == b"" and final.file is not None
    assert final.file.spooled is not None
    assert body(final) == b"first second last"
    assert disk.files == 1 and disk.bytes == 17  # the loop closes it once sent
    final.file.spooled.close()
    assert disk.files == 0 and disk.bytes == 0


def test_a_delivery_with_the_head_is_never_spooled(tmp_path):
    channel, delivered, disk = channel_with_spool(tmp_path)
    thread = threading.Thread(target=channel.send, args=(Delivery(object(), b"x", False, False), 1))  # type: ignore[arg-type]
    thread.start()
    thread.join(0.2)
    assert thread.is_alive()  # it waits for the client, as without a spool
    channel.resume()
    thread.join(5)
    assert [d.body for d in delivered] == [b"x"] and disk.files_total == 0


def test_a_full_spool_file_crosses_on_its_own_and_the_thread_waits_for_it(tmp_path):
    """cap 200, limit 100: a full file goes to the loop counted in flight, so the thread waits
    until the loop has sent it, then spools again."""
    channel, delivered, disk = channel_with_spool(tmp_path, cap=200)
    channel.send(Delivery(None, b"s" * 200, False, False), 200)
    done = threading.Event()

    def more() -> None:
        channel.send(Delivery(None, b"abc", False, False), 3)
        done.set()

    thread = threading.Thread(target=more)
    thread.start()
    assert wait_for(lambda: len(delivered) == 1)
    (region,) = delivered
    assert not region.last and region.file is not None and body(region) == b"s" * 200
    assert not done.wait(0.2)  # 200 bytes in flight, past the limit: it waits for the loop
    assert disk.files == 1  # (and makes no second file meanwhile)
    assert region.file.spooled is not None
    region.file.spooled.close()  # the loop sent it and closed it
    channel.written(200)
    assert done.wait(5)  # still paused: a new spool file for what came next
    channel.finish(Delivery(None, b"", True, True))
    assert body(delivered[-1]) == b"abc"
    thread.join(5)


def test_no_room_on_disk_means_waiting_as_without_a_spool(tmp_path):
    channel, delivered, disk = channel_with_spool(tmp_path, capacity=4)
    thread = threading.Thread(target=channel.send, args=(Delivery(None, b"too big", False, False), 7))
    thread.start()
    thread.join(0.2)
    assert thread.is_alive() and disk.files_total == 0 and disk.full == 1
    channel.resume()
    thread.join(5)
    assert [d.body for d in delivered] == [b"too big"]


def test_a_closed_connection_fails_the_next_send_and_closes_the_spool(tmp_path):
    channel, delivered, disk = channel_with_spool(tmp_path)
    channel.send(Delivery(None, b"held", False, False), 4)
    assert disk.files == 1
    channel.close()
    with pytest.raises(ClientDisconnected):
        channel.send(Delivery(None, b"more", False, False), 4)
    assert disk.files == 0 and disk.bytes == 0
    channel.finish(Delivery(None, b"", False, True, abort=True))
    assert [d.abort for d in delivered] == [True]


def test_an_abort_drops_the_spool(tmp_path):
    channel, delivered, disk = channel_with_spool(tmp_path)
    channel.send(Delivery(None, b"held", False, False), 4)
    channel.finish(Delivery(None, b"", False, True, abort=True))
    assert disk.files == 0 and [d.file for d in delivered] == [None]


def test_a_last_delivery_the_file_cannot_take_follows_it(tmp_path):
    channel, delivered, _ = channel_with_spool(tmp_path, cap=6)
    channel.send(Delivery(None, b"abcd", False, False), 4)
    channel.finish(Delivery(None, b"efgh", True, True))
    first, last = delivered
    assert not first.last and body(first) == b"abcd"
    assert last.last and last.file is None and last.body == b"efgh"
    assert first.file is not None and first.file.spooled is not None
    first.file.spooled.close()


def test_without_a_spool_cap_nothing_is_spooled(tmp_path):
    disk = SpoolDisk(str(tmp_path), 1000)
    delivered: List[Delivery] = []
    channel = OutputChannel(NowLoop(), delivered.append, limit=100, paused=True, spool=disk, spool_cap=0)
    thread = threading.Thread(target=channel.send, args=(Delivery(None, b"x", False, False), 1))
    thread.start()
    thread.join(0.2)
    assert thread.is_alive()
    channel.resume()
    thread.join(5)
    assert disk.files_total == 0


# --- the input stream: a body read back from a spool file ----------------------------------------


def spooled_stream(tmp_path, spooled: bytes, then: List[bytes], eof: bool = True) -> InputStream:
    disk = SpoolDisk(str(tmp_path), 1 << 20)
    spool = disk.new_file(1 << 20)
    assert spool is not None and spool.append(spooled)
    stream = InputStream(NowLoop(), 1 << 20, on_resume=lambda: None)
    stream.read_file_first(spool)
    for piece in then:
        stream.feed(piece)
    if eof:
        stream.feed_eof()
    return stream


@pytest.mark.parametrize("size", [1, 3, 7, 100])
def test_reads_of_any_size_run_on_from_the_file_into_what_came_after(tmp_path, size):
    stream = spooled_stream(tmp_path, b"0123456789", [b"abc", b"defg"])
    pieces = list(iter(lambda: stream.read(size), b""))
    assert b"".join(pieces) == b"0123456789abcdefg"
    assert all(len(piece) == size for piece in pieces[:-1])  # short only at the end


def test_read_all_joins_the_file_and_the_rest(tmp_path):
    assert spooled_stream(tmp_path, b"spooled,", [b"streamed"]).read() == b"spooled,streamed"


def test_lines_straddling_the_end_of_the_file_come_whole(tmp_path):
    stream = spooled_stream(tmp_path, b"one\ntw", [b"o\nthr", b"ee\n", b"tail"])
    assert list(stream) == [b"one\n", b"two\n", b"three\n", b"tail"]


def test_a_long_line_in_the_file_is_found_past_one_look(tmp_path):
    line = b"y" * 20_000 + b"\n"
    stream = spooled_stream(tmp_path, line * 2, [])
    assert stream.readline() == line and stream.readline(5) == b"yyyyy"


def test_a_read_after_the_request_is_over_raises_instead_of_reading_another_file(tmp_path):
    stream = spooled_stream(tmp_path, b"abcdef", [])
    assert stream.read(2) == b"ab"
    spool = stream._file
    assert spool is not None
    spool.close()  # the loop, at the request's end
    with pytest.raises(ClientDisconnected):
        stream.read(2)


def test_take_buffered_hands_back_what_was_fed_even_if_partly_read(tmp_path):
    stream = InputStream(NowLoop(), 1 << 20, on_resume=lambda: None)
    stream.feed(b"abcdef")
    stream.feed(b"gh")
    assert stream.read(2) == b"ab"
    assert [bytes(p) for p in stream.take_buffered()] == [b"cdef", b"gh"]
    stream.feed_eof()
    assert stream.read() == b""


# --- configuration -------------------------------------------------------------------------------


def test_spool_options_that_cannot_take_effect_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="--request-spool-bytes needs --spool-total-bytes"):
        Config(spool_total_bytes=0, request_spool_bytes=5)
    with pytest.raises(ConfigError, match="--response-spool-bytes needs --response-buffer-bytes"):
        Config(response_buffer_bytes=0, response_spool_bytes=5)
    with pytest.raises(ConfigError, match="--spool-dir is set, but nothing is spooled"):
        Config(spool_dir=str(tmp_path), spool_total_bytes=0)
    with pytest.raises(ConfigError, match="--spool-total-bytes must be >= 0"):
        Config(spool_total_bytes=-1)
    assert not Config(spool_total_bytes=0).spools
    assert not Config(request_spool_bytes=0, response_spool_bytes=0).spools
    assert Config(request_buffer_bytes=0).spools  # responses still are
    assert Config(spool_dir=str(tmp_path), request_spool_bytes=0).spools
