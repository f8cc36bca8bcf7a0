"""Configuration layering: flags > FAAFO_* environment > INI file > defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from faafo.config import ApiSettings, WorkerSettings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("DATABASE_URL", "TRANSPORT_URL", "BIND_PORT", "ENDPOINT_URL", "DATA_DIR"):
        monkeypatch.delenv(f"FAAFO_{name}", raising=False)


def write_ini(tmp_path, text):
    path = tmp_path / "faafo.conf"
    path.write_text(text)
    return path


def test_defaults_are_embedded_under_data_dir(tmp_path):
    settings = load_settings(ApiSettings, {"data_dir": tmp_path})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/faafo.sqlite3"
    assert settings.transport_url == f"embedded://{tmp_path.resolve()}/queue.sqlite3"
    assert settings.bind_port == 8080


def test_ini_then_env_then_flags(tmp_path, monkeypatch):
    ini = write_ini(
        tmp_path,
        "[DEFAULT]\nbind_port = 81\ndatabase_url = sqlite:///ini.db\n"
        "transport_url = amqp://ini//\n[api]\nbind_port = 82\n",
    )
    settings = load_settings(ApiSettings, {}, ini)
    assert settings.bind_port == 82, "the service's own section wins over [DEFAULT]"
    assert settings.database_url == "sqlite:///ini.db"
    monkeypatch.setenv("FAAFO_BIND_PORT", "83")
    monkeypatch.setenv("FAAFO_DATABASE_URL", "sqlite:///env.db")
    settings = load_settings(ApiSettings, {}, ini)
    assert (settings.bind_port, settings.database_url) == (83, "sqlite:///env.db")
    settings = load_settings(ApiSettings, {"bind_port": "84"}, ini)
    assert settings.bind_port == 84 and settings.transport_url == "amqp://ini//"


def test_worker_reads_endpoint_url(tmp_path):
    ini = write_ini(tmp_path, "[DEFAULT]\nendpoint_url = http://api:80\n")
    assert load_settings(WorkerSettings, {}, ini).endpoint_url == "http://api:80"


@pytest.mark.parametrize("program", ["faafo.api.main", "faafo.worker.main"])
def test_help_documents_every_option(program):
    out = subprocess.run(
        [sys.executable, "-m", program, "--help"], capture_output=True, text=True, check=True
    ).stdout
    options = ["--database-url", "--transport-url", "--config-file", "--log-format"]
    if program == "faafo.api.main":
        options += ["--listen-address", "--bind-port", "--max-pixels"]
    else:
        options += ["--endpoint-url", "--name", "--concurrency"]
    for option in options:
        assert option in out
    assert "FAAFO_DATABASE_URL" in out


def test_bad_configuration_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "faafo.api.main", "--bind-port", "eighty", "migrate"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--bind-port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
