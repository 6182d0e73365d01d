"""The access log: combined, gunicorn-style atoms, JSON; escaping; queue/app time, bytes, disconnects."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
from typing import Any, Dict

import pytest

from asyncwsgi import Config, ConfigError
from asyncwsgi.accesslog import COMBINED, AccessFormatter, AccessRecord, BatchedStreamHandler, combined_entry
from tests.apps import basic
from tests.helpers import Reader, connect, get, request, wait_for
from tests.proc import CLIServer


def record(**extra):
    environ = {
        "REMOTE_ADDR": "203.0.113.9",
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/p",
        "QUERY_STRING": "a=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "curl/8\x1b[31m\x9b",
        "HTTP_X_REQUEST_ID": "abc",
    }
    environ.update(extra.pop("environ", {}))
    values: Dict[str, Any] = dict(
        environ=environ,
        request_line="GET /p?a=1 HTTP/1.1",
        status=200,
        bytes_out=13,
        bytes_in=5,
        duration=0.0123,
        queue=0.0021,
        app=0.0042,
        disconnected=False,
    )
    values.update(extra)
    return AccessRecord(**values)


def test_combined_is_the_default_and_escapes_client_text():
    line = AccessFormatter("combined").format(record())
    assert re.fullmatch(
        r'203\.0\.113\.9 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /p\?a=1 HTTP/1\.1" 200 13 '
        r'"-" "curl/8\\x1b\[31m\\x9b" 12\.3ms',
        line,
    ), line


def test_x_marks_requests_cut_off_at_the_request_timeout_and_clients_that_left():
    formatter = AccessFormatter("%(s)s %(x)s")
    assert formatter.format(record()) == "200 -"
    assert formatter.format(record(disconnected=True)) == "200 disconnected"
    assert formatter.format(record(timed_out=True, disconnected=True)) == "200 timeout"
    assert json.loads(AccessFormatter("json").format(record(timed_out=True)))["timed_out"] is True


def test_gunicorn_atoms_and_ours():
    spec = '%(h)s "%(r)s" %(s)s %(b)s %(m)s %(U)s %(q)s %(H)s %(D)s %(L)s %(Q)s %(A)s %(I)s %(O)s %(x)s %(p)s'
    fields = AccessFormatter(spec + " %({x-request-id}i)s %({PATH_INFO}e)s 100%%").format(record()).split(" ")
    assert fields[:5] == ["203.0.113.9", '"GET', "/p?a=1", 'HTTP/1.1"', "200"]
    assert fields[5:13] == ["13", "GET", "/p", "a=1", "HTTP/1.1", "12300", "0.012300", "2.1"]
    assert fields[13:17] == ["4.2", "5", "13", "-"]
    assert fields[17].isdigit() and fields[18:] == ["abc", "/p", "100%"]
    gone = AccessFormatter("%(x)s %(b)s").format(record(disconnected=True, bytes_out=0))
    assert gone == "disconnected -"


def test_json_lines_escape_everything():
    line = AccessFormatter("json").format(record())
    assert "\x1b" not in line and "\x9b" not in line  # JSON escapes control characters
    data = json.loads(line)
    assert data["user_agent"] == "curl/8\x1b[31m\x9b"
    assert (data["status"], data["bytes_in"], data["bytes_out"]) == (200, 5, 13)
    assert (data["queue_ms"], data["app_ms"], data["disconnected"]) == (2.1, 4.2, False)


def test_unknown_atom_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--access-log-format unknown atom %\(z\)s"):
        Config(access_log_format="%(h)s %(z)s")


def _access_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "asyncwsgi.access"]


def test_json_access_log_end_to_end(serve, caplog):
    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    srv = serve(basic.echo, access_log=True, access_log_format="json")
    body = b"x" * 1000
    resp = request(srv.port, b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + body)
    assert resp.status == 200
    assert wait_for(lambda: _access_lines(caplog))
    data = json.loads(_access_lines(caplog)[-1])
    assert (data["method"], data["path"], data["status"]) == ("POST", "/up", 200)
    assert data["bytes_in"] == 1000 and data["bytes_out"] == len(resp.body)
    assert data["queue_ms"] >= 0 and data["app_ms"] >= 0 and data["duration_ms"] >= data["app_ms"] - 1


def test_slow_app_time_and_disconnect_are_logged(serve, caplog):
    caplog.set_level(logging.INFO, logger="asyncwsgi.access")
    srv = serve(basic.slow, access_log=True, access_log_format="%(A)s %(x)s %(s)s")
    assert request(srv.port, get("/?0.2")).status == 200
    assert wait_for(lambda: _access_lines(caplog))
    app_ms, gone, status = _access_lines(caplog)[-1].split()
    assert float(app_ms) >= 190 and gone == "-" and status == "200"
    with connect(srv.port) as sock:
        sock.sendall(get("/?0.3"))
    # The client left before the answer: logged as disconnected once the app is done.
    assert wait_for(lambda: len(_access_lines(caplog)) == 2 and "disconnected" in _access_lines(caplog)[-1])


@pytest.mark.parametrize(
    "environ",
    [
        {"REMOTE_ADDR": "10.0.0.1", "HTTP_REFERER": "https://r/", "HTTP_USER_AGENT": 'ua "q" \x1b'},
        {},
        {"REMOTE_ADDR": "", "HTTP_USER_AGENT": "x\\y"},
    ],
)
@pytest.mark.parametrize("bytes_out", [0, 13])
def test_the_written_out_combined_format_equals_the_atoms(environ, bytes_out):
    """The default format has a fast path of its own; it must say exactly what the atoms say."""
    record = AccessRecord(
        environ=environ,
        request_line='GET /a"b\x07 HTTP/1.1',
        status=404,
        bytes_out=bytes_out,
        bytes_in=0,
        duration=0.01234,
        queue=0.0,
        app=0.0,
        disconnected=False,
    )
    generic = AccessFormatter(COMBINED)
    generic.combined = False  # the same spec through the atoms
    assert AccessFormatter("combined").format(record) == generic.format(record)


def test_batched_handler_writes_whole_lines_in_order_and_flushes_what_is_pending():
    stream = io.StringIO()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))

    async def scenario():
        loop = asyncio.get_running_loop()
        handler.add("one", loop)
        handler.add("two", loop)
        assert stream.getvalue() == ""  # batched, not yet written
        # A record from elsewhere (another logger call) comes after what is pending.
        handler.emit(logging.makeLogRecord({"msg": "three"}))
        assert stream.getvalue() == "one\ntwo\nthree\n"
        handler.add("four", loop)
        await asyncio.sleep(BatchedStreamHandler.FLUSH_SECONDS * 2)
        assert stream.getvalue().endswith("three\nfour\n")  # written by the timer
        # The server's default lines come as entries, formatted when the batch is written.
        handler.add(combined_entry({"REMOTE_ADDR": "10.0.0.9"}, "GET /five HTTP/1.1", 200, 0, 0.002), loop)
        handler.add("six", loop)

    asyncio.run(scenario())
    handler.flush()  # what logging.shutdown() does at exit
    written = stream.getvalue().split("\n")
    assert written[:4] == ["one", "two", "three", "four"] and written[5:] == ["six", ""]
    assert re.fullmatch(r'10\.0\.0\.9 - - \[.*\] "GET /five HTTP/1\.1" 200 - "-" "-" 2\.0ms', written[4])


def test_the_command_loses_no_access_line_on_sigterm():
    """Lines are written in batches; a SIGTERM right after the last answer still gets all of them
    out (logging.shutdown flushes at exit)."""
    with CLIServer("tests.apps.basic:hello", "--port", "0") as server:
        server.wait_listening()
        with connect(server.port) as sock:
            sock.sendall(get("/counted") * 200)
            reader = Reader(sock)
            for _ in range(200):
                assert reader.response().status == 200
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        lines = [line for line in server.lines if '"GET /counted HTTP/1.1" 200' in line]
        assert len(lines) == 200, server.output()[-2000:]
        # ...and before the line that says the server stopped, not after it.
        last = max(i for i, line in enumerate(server.lines) if '"GET /counted HTTP/1.1" 200' in line)
        assert any("asyncwsgi stopped" in line for line in server.lines[last:]), server.output()[-2000:]
