"""Settings from a TOML file, pyproject.toml and ASYNCWSGI_* variables; precedence; --print-config."""

from __future__ import annotations

import sys

import pytest

from asyncwsgi import Config, ConfigError
from asyncwsgi.process.cli import build_parser, config_from_args
from asyncwsgi.process.settings import env_options, to_toml
from tests.proc import run_cli

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11+")


def _config(argv, environ=None, cwd="."):
    return config_from_args(build_parser().parse_args(argv), environ or {}, cwd)


def test_precedence_cli_over_env_over_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('threads = 3\nkeep-alive = 7.5\nqueue_size = 9\nbind = ["127.0.0.1:1", "unix:/tmp/a.sock"]\n')
    config = _config(["x:y", "-c", str(path), "--threads", "5"], {"ASYNCWSGI_KEEP_ALIVE": "2"})
    assert (config.threads, config.keep_alive, config.queue_size) == (5, 2.0, 9)
    assert config.bind == ("127.0.0.1:1", "unix:/tmp/a.sock")


def test_pyproject_tool_table_is_read_from_the_current_directory(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.asyncwsgi]\nthreads = 12\n')
    assert _config(["x:y"], cwd=str(tmp_path)).threads == 12
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert _config(["x:y"], cwd=str(tmp_path)).threads == Config().threads


def test_environment_values_are_typed():
    options = env_options(
        {
            "ASYNCWSGI_THREADS": "16",
            "ASYNCWSGI_KEEP_ALIVE": "2.5",
            "ASYNCWSGI_PROXY_HEADERS": "yes",
            "ASYNCWSGI_SERVER_HEADER": "off",
            "ASYNCWSGI_BIND": "0.0.0.0:8000, unix:/run/a.sock",
            "ASYNCWSGI_CERTFILE": "/etc/cert.pem",
            "PATH": "/usr/bin",
        }
    )
    assert options == {
        "threads": 16,
        "keep_alive": 2.5,
        "proxy_headers": True,
        "server_header": False,
        "bind": ("0.0.0.0:8000", "unix:/run/a.sock"),
        "certfile": "/etc/cert.pem",
    }


@pytest.mark.parametrize(
    "environ,message",
    [
        ({"ASYNCWSGI_THREDS": "4"}, "environment variable ASYNCWSGI_THREDS: unknown setting 'threds'"),
        ({"ASYNCWSGI_THREADS": "many"}, "--threads expects int, got 'many'"),
        ({"ASYNCWSGI_PROXY_HEADERS": "maybe"}, "expected true or false"),
    ],
)
def test_bad_environment_is_an_error_naming_the_variable(environ, message):
    with pytest.raises(ConfigError, match=message):
        _config(["x:y"], environ)


@pytest.mark.parametrize(
    "text,message",
    [
        ("thread = 4\n", "unknown setting 'thread'"),
        ("threads = 'four'\n", "--threads must be int"),
        ("threads = [1, 2]\n", "takes one value, not a list"),
        ("threads = \n", "is not valid TOML"),
    ],
)
def test_bad_file_is_an_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        _config(["x:y", "-c", str(path)])


def test_print_config_round_trips(tmp_path):
    config = Config(threads=6, bind=("127.0.0.1:9",), proxy_headers=True, root_path="/api")
    path = tmp_path / "printed.toml"
    path.write_text(to_toml(config))
    assert _config(["x:y", "-c", str(path)]) == config


def test_cli_print_config_and_missing_file():
    result = run_cli("--print-config", "--threads", "4")
    assert result.returncode == 0 and "threads = 4\n" in result.stdout
    result = run_cli("x:y", "-c", "/nonexistent/asyncwsgi.toml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "asyncwsgi: error: cannot read /nonexistent/asyncwsgi.toml: No such file or directory"
    ]
    result = run_cli("--threads", "4")
    assert result.returncode == 2 and "the app is required" in result.stderr
