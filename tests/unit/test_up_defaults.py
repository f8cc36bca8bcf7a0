"""``faafo up`` without flags: one worker per core, the user's data directory,
port 8080, and the CLI's default endpoint on that same port.

Parsed by the real ``faafo`` parser; no server is started (the one test that
calls ``run`` stops it at the port check, before any process is spawned).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from faafo import config
from faafo.client import cli as client_cli
from faafo.launcher import addresses
from faafo.launcher import cli as launcher_cli

linux_only = pytest.mark.skipif(
    sys.platform == "darwin" or os.name == "nt", reason="XDG data directory is the Linux layout"
)


def parse_up(*argv: str):
    """``faafo up ARGV`` through the whole ``faafo`` parser, as main() parses it."""
    args = client_cli.build_parser().parse_args(["up", *argv])
    assert args.run is launcher_cli.run, "'up' is dispatched to the launcher"
    return args


def _pretend_cores(monkeypatch, count: int | None) -> None:
    """Every way Python reports usable cores answers ``count`` (None: unknown)."""
    monkeypatch.setattr(os, "cpu_count", lambda: count)
    if hasattr(os, "process_cpu_count"):
        monkeypatch.setattr(os, "process_cpu_count", lambda: count)
    if hasattr(os, "sched_getaffinity"):
        cores = set(range(count)) if count else set()
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: cores)


@pytest.mark.parametrize("cores", [1, 3, 7, 64])
def test_workers_default_to_one_per_core(monkeypatch, cores):
    _pretend_cores(monkeypatch, cores)
    assert parse_up().workers == cores


def test_workers_default_is_the_machines_core_count():
    expected = {os.cpu_count() or 1}
    if hasattr(os, "sched_getaffinity"):
        expected.add(len(os.sched_getaffinity(0)))
    assert parse_up().workers in expected


def test_workers_default_is_at_least_one_when_cores_are_unknown(monkeypatch):
    _pretend_cores(monkeypatch, None)
    workers = parse_up().workers
    assert isinstance(workers, int) and workers >= 1


def test_workers_flag_overrides_the_default(monkeypatch):
    _pretend_cores(monkeypatch, 8)
    assert parse_up("--workers", "2").workers == 2
    assert parse_up("--workers", "0").workers == 0, "0 workers is allowed (API only)"


def test_bind_port_defaults_to_8080():
    args = parse_up()
    assert args.bind_port == 8080 == config.DEFAULT_PORT
    assert args.listen_address == "127.0.0.1"


def test_cli_default_endpoint_is_the_port_up_listens_on(monkeypatch, tmp_path):
    # No flag, no FAAFO_ENDPOINT_URL, no INI file: the CLI's own default.
    monkeypatch.delenv("FAAFO_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "absent" / "faafo.conf")
    up = parse_up()
    cli_args = client_cli.build_parser().parse_args(["list"])
    endpoint = client_cli.endpoint_of(cli_args, environ={})
    assert endpoint == client_cli.DEFAULT_ENDPOINT
    assert urlsplit(endpoint).port == up.bind_port
    # up records the client token under its public URL; the CLI must look it up there.
    assert addresses.public_url(up.listen_address, up.bind_port) == endpoint
    # And the workers' default endpoint is the same port.
    assert urlsplit(config.WorkerSettings.model_fields["endpoint_url"].default).port == 8080


def test_data_dir_default_is_left_to_default_data_dir():
    # None on the command line: run() resolves it with default_data_dir() at start.
    assert parse_up().data_dir is None
    assert parse_up("--data-dir", "somewhere").data_dir == Path("somewhere")


@linux_only
def test_default_data_dir_honours_xdg_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert config.default_data_dir() == tmp_path / "xdg" / "faafo"


@linux_only
@pytest.mark.parametrize("xdg", [None, ""])
def test_default_data_dir_without_xdg_is_local_share(monkeypatch, tmp_path, xdg):
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.default_data_dir() == tmp_path / "home" / ".local" / "share" / "faafo"


@linux_only
def test_up_help_shows_the_xdg_data_dir(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exit_:
        client_cli.build_parser().parse_args(["up", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"default {tmp_path / 'xdg' / 'faafo'}" in out


@linux_only
def test_up_without_data_dir_uses_the_xdg_data_dir(monkeypatch, tmp_path, capsys):
    """run() itself creates the default directory; stopped at the port check, nothing spawned."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr("faafo.logs.setup", lambda *a, **k: None)
    checked = []

    def refuse(address, port):
        checked.append((address, port))
        return "test: refused before starting anything"

    monkeypatch.setattr(launcher_cli, "can_listen", refuse)

    def no_supervisor(*a, **k):
        raise AssertionError("a supervisor was started")

    monkeypatch.setattr("faafo.launcher.supervisor.Supervisor", no_supervisor)
    assert launcher_cli.run(parse_up()) == 1
    assert (tmp_path / "xdg" / "faafo").is_dir(), "the data directory was not created"
    assert checked == [("127.0.0.1", 8080)]
    assert "cannot listen on 127.0.0.1:8080" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_workers_default_follows_the_cpu_affinity_not_the_machine(monkeypatch):
    """Pinned to 2 cores of a 64-core machine (a container), faafo up starts 2 workers."""
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert client_cli.build_parser().parse_args(["up"]).workers == 2
