"""Bad configuration stops a program with one line and a non-zero exit, never a traceback.

Each case runs the real program in a child process, as an operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.processes import free_port

PROGRAMS = {
    "faafo-api": ["-m", "faafo.api.main"],
    "faafo-worker": ["-m", "faafo.worker.main"],
    "faafo": ["-m", "faafo.client.cli"],
}


def run(tmp_path: Path, program: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``program argv`` with no FAAFO_* variable and every default path under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAAFO_")}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    return subprocess.run(
        [sys.executable, *PROGRAMS[program], *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def assert_one_line(done: subprocess.CompletedProcess[str], prefix: str, *needles: str) -> str:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(prefix), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def ini(tmp_path: Path, text: str) -> str:
    path = tmp_path / "faafo.conf"
    path.write_text(text)
    return str(path)


def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


CASES = [
    ("faafo-api", ["--log-level", "BOGUS"], "log level must be one of DEBUG"),
    ("faafo-worker", ["--log-level", "BOGUS"], "log level must be one of DEBUG"),
    ("faafo-api", ["--log-format", "yaml", "migrate"], "log format must be text or json"),
    ("faafo-api", ["--database-url", "nonsense"], "--database-url: 'nonsense' is not a database"),
    ("faafo-api", ["--database-url", "nonsense", "migrate"], "is not a database URL"),
    ("faafo-api", ["--database-url", "foo://h/db", "migrate"], "unsupported database 'foo'"),
    ("faafo-api", ["--transport-url", "bogus://"], "unknown queue transport 'bogus'"),
    ("faafo-worker", ["--transport-url", "bogus://"], "unknown queue transport 'bogus'"),
    ("faafo-worker", ["--endpoint-url", "notaurl"], "'notaurl' is not an http:// or https://"),
    ("faafo-worker", ["--endpoint-url", "http://api:99999"], "has a bad port"),
]


@pytest.mark.parametrize(("program", "argv", "needle"), CASES, ids=lambda v: str(v)[:40])
def test_bad_option_values(tmp_path, program, argv, needle):
    assert_one_line(run(tmp_path, program, *argv), f"{program}: error: bad configuration", needle)


@pytest.mark.parametrize(
    ("program", "text", "needle"),
    [
        ("faafo-api", "[DEFAULT]\nbind_prot = 80\n", "unknown option 'bind_prot' in [DEFAULT]"),
        ("faafo-worker", "[worker]\nbind_port = 80\n", "'bind_port' in [worker] is not read"),
        ("faafo-api", "bind_port = 80\n", "line 1: no [section] header before 'bind_port = 80'"),
        ("faafo-api", "[DEFAULT]\nbind_port\n", "line 2: not 'name = value': 'bind_port'"),
        ("faafo-worker", "[worker]\nname = a\nname = b\n", "line 3: option 'name' given twice"),
    ],
    ids=["unknown-key", "other-services-key", "no-section", "no-value", "twice"],
)
def test_bad_ini_files_name_the_file(tmp_path, program, text, needle):
    path = ini(tmp_path, text)
    done = run(tmp_path, program, "--config-file", path)
    assert_one_line(done, f"{program}: error: bad configuration: {path}", needle)


def test_a_missing_config_file(tmp_path):
    done = run(tmp_path, "faafo-api", "--config-file", str(tmp_path / "nowhere.conf"), "migrate")
    assert_one_line(done, "faafo-api: error:", "cannot read", "nowhere.conf", "No such file")


def test_a_data_dir_under_a_regular_file(tmp_path):
    under = regular_file(tmp_path) / "data"
    for argv in (["migrate"], []):
        done = run(tmp_path, "faafo-api", "--data-dir", str(under), *argv)
        assert_one_line(done, "faafo-api: error: cannot open the database", "Not a directory")


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_an_unreachable_postgresql(tmp_path, command):
    # Nothing listens on this port: the 38-frame traceback of the issue, now one line.
    url = f"postgresql+psycopg://faafo:pw-not-shown@127.0.0.1:{free_port()}/faafo"
    done = run(tmp_path, "faafo-api", "--database-url", url, "--bind-port", "0", command)
    line = assert_one_line(
        done, "faafo-api: error: cannot migrate the database", "Connection refused"
    )
    assert done.returncode == 1
    assert "pw-not-shown" not in line and "faafo:***@127.0.0.1" in line


def test_log_format_json_in_any_case_gives_json(tmp_path):
    done = run(tmp_path, "faafo-api", "--data-dir", str(tmp_path / "d"), "--log-format", "JSON",
               "migrate")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.strip().splitlines()]
    assert records and all(r["service"] == "api" for r in records)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--log-level", "BOGUS"], "argument --log-level: log level must be one of"),
        (["--log-format", "yaml"], "argument --log-format: log format must be text or json"),
        (["--database-url", "nonsense"], "argument --database-url: 'nonsense' is not a database"),
        (["--transport-url", "bogus://"], "argument --transport-url: unknown queue transport"),
    ],
    ids=["log-level", "log-format", "database-url", "transport-url"],
)
def test_faafo_up_bad_options(tmp_path, argv, needle):
    done = run(tmp_path, "faafo", "up", "--data-dir", str(tmp_path / "d"), *argv)
    assert_one_line(done, "faafo up: error:", needle)
    assert done.returncode == 2


def test_faafo_up_data_dir_under_a_regular_file(tmp_path):
    under = regular_file(tmp_path) / "data"
    done = run(tmp_path, "faafo", "up", "--data-dir", str(under), "--bind-port", "0")
    assert_one_line(done, "faafo: error: cannot create the data directory", "Not a directory")
    assert done.returncode == 1


def test_faafo_up_an_address_that_is_not_here(tmp_path):
    done = run(tmp_path, "faafo", "up", "--data-dir", str(tmp_path / "d"), "--listen-address",
               "192.0.2.1", "--bind-port", "0")
    assert_one_line(done, "faafo: error: cannot listen on 192.0.2.1:0", "assign")
