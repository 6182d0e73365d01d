from __future__ import annotations

import dataclasses
import sys

import pytest

from asyncwsgi.config import _FIELD_TYPES, Config, field_choices, number_kind
from asyncwsgi.errors import ConfigError


def test_defaults_are_valid():
    config = Config()
    assert (config.host, config.port, config.threads, config.keep_alive) == ("127.0.0.1", 8000, 8, 5.0)


def test_types_and_choices_come_from_the_annotations():
    assert set(_FIELD_TYPES) == {f.name for f in dataclasses.fields(Config)}
    assert _FIELD_TYPES["keep_alive"] == (int, float)  # float: an int is taken too
    assert _FIELD_TYPES["threads"] == (int,)
    assert _FIELD_TYPES["fd"] == (int, type(None))  # Optional[int]
    assert _FIELD_TYPES["bind"] == (tuple,)
    assert field_choices("loop") == ("auto", "asyncio", "uvloop")
    assert field_choices("cert_reqs") == ("none", "optional", "required")
    assert field_choices("threads") is None
    assert number_kind("keep_alive") is float and number_kind("threads") is int
    assert number_kind("host") is None


@pytest.mark.parametrize(
    "options,message",
    [
        ({"loop": "twisted"}, "--loop must be one of auto, asyncio, uvloop"),
        ({"url_scheme": "ftp"}, "--url-scheme must be one of http, https"),
        ({"threads": 2.5}, "--threads must be int"),
        ({"keep_alive": True}, "--keep-alive must be int or float"),
        ({"certfile": 3}, "--certfile must be str or None"),
    ],
)
def test_values_outside_the_annotation_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        Config(**options)


def test_every_field_has_help():
    assert all(f.metadata.get("help") for f in dataclasses.fields(Config))


@pytest.mark.parametrize(
    "options,message",
    [
        ({"threads": 0}, "--threads must be >= 1"),
        ({"queue_size": -1}, "--queue-size must be >= 0"),
        ({"port": -1}, "--port must be between"),
        ({"keep_alive": -1.0}, "--keep-alive must be a finite"),
        ({"graceful_timeout": float("inf")}, "--graceful-timeout must be a finite"),
        ({"loop": "tokio"}, "--loop must be one of"),
        ({"threads": "8"}, "--threads must be int"),
        ({"threads": True}, "--threads must be int"),
        ({"access_log": 1}, "--access-log must be bool"),
        ({"uds": "/x", "fd": 3}, "mutually exclusive"),
        ({"max_head_bytes": 10}, "--max-head-bytes must be >= 1024"),
        ({"spare_threads": 2}, "--spare-threads needs --request-timeout"),
        ({"interrupt_on_timeout": True}, "--interrupt-on-timeout needs --request-timeout"),
        ({"spare_threads": -1, "request_timeout": 5.0}, "--spare-threads must be >= 0"),
    ],
)
def test_invalid_values_name_the_flag(options, message):
    with pytest.raises(ConfigError, match=message):
        Config(**options)


def test_from_options_rejects_unknown_and_overrides_base():
    with pytest.raises(ConfigError, match=r"unknown option.*bogus"):
        Config.from_options(bogus=1)
    base = Config(threads=4)
    assert Config.from_options(base, port=0) == Config(threads=4, port=0)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().threads = 2  # type: ignore[misc]


def test_int_accepted_for_seconds():
    assert Config(keep_alive=2).keep_alive == 2


def test_spares_default_to_as_many_as_threads_and_only_with_a_deadline():
    assert Config(threads=3).spares == 0  # no --request-timeout: nothing is lent
    assert Config(threads=3, request_timeout=5.0).spares == 3
    assert Config(threads=3, request_timeout=5.0, spare_threads=0).spares == 0
    assert Config(threads=3, request_timeout=5.0, spare_threads=7).spares == 7


def test_deadline_header_is_a_header_name_and_allows_spares_alone():
    with pytest.raises(ConfigError, match="--deadline-header must be a header name"):
        Config(deadline_header="X Deadline")
    config = Config(threads=2, deadline_header="X-Request-Deadline", spare_threads=1)
    assert config.deadlines and config.spares == 1


def test_interrupt_on_timeout_is_refused_where_interrupts_skip_finally_blocks():
    if sys.version_info >= (3, 13):
        with pytest.raises(ConfigError, match="gh-139622"):
            Config(request_timeout=5.0, interrupt_on_timeout=True)
    else:
        assert Config(request_timeout=5.0, interrupt_on_timeout=True).interrupt_on_timeout


@pytest.mark.parametrize(
    "options,message",
    [
        ({"reload_dir": ("/srv",)}, "--reload-dir needs --reload"),
        ({"reload_include": ("*.html",)}, "--reload-include needs --reload"),
        ({"reload_exclude": ("build/*",)}, "--reload-exclude needs --reload"),
        ({"uds_mode": "660"}, "--uds-mode needs a Unix socket"),
        ({"uds_mode": "660", "bind": ("127.0.0.1:8000",)}, "--uds-mode needs a Unix socket"),
        ({"access_log": False, "access_log_format": "json"}, "--access-log-format is given with --no-access-log"),
        ({"reuse_port": False}, "--no-reuse-port only applies"),
        ({"max_requests_jitter": 10}, "--max-requests-jitter needs --max-requests"),
    ],
)
def test_an_option_that_would_do_nothing_is_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        Config(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"reload": True, "reload_dir": ("/srv",)},
        {"uds": "/tmp/a.sock", "uds_mode": "660"},
        {"bind": ("unix:/tmp/a.sock",), "uds_mode": "660"},
        {"access_log": True, "access_log_format": "json"},
        {"workers": 2, "reuse_port": False},
        {"max_requests": 100, "reuse_port": False, "max_requests_jitter": 10},
    ],
)
def test_the_same_options_beside_what_they_need_are_taken(options):
    Config(**options)


@pytest.mark.parametrize(
    "options,supervised",
    [
        ({}, False),
        ({"workers": 2}, True),
        ({"reload": True}, True),
        ({"max_requests": 5}, True),
        ({"worker_timeout": 10.0}, True),
        ({"worker_timeout": 30.0}, False),
    ],
)
def test_the_supervisor_runs_when_an_option_needs_it(options, supervised):
    assert Config(**options).supervised is supervised
