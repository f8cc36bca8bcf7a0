"""Configuration layering: flags > FAAFO_* environment > INI file > defaults."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("program", ["faafo.api.main", "faafo.worker.main"])
def test_help_shows_real_defaults_and_hides_test_options(program, tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg"), "COLUMNS": "400"}
    out = subprocess.run(
        [sys.executable, "-m", program, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    flat = " ".join(out.split())
    assert "PydanticUndefined" not in out
    assert f"(default: {tmp_path / 'xdg' / 'faafo'})" in flat, "data_dir's computed default"
    assert "--test-delay-before-publish" not in out
    assert "(default: )" not in flat, "empty defaults (tokens) are not shown"
    if program == "faafo.api.main":
        assert "--migrate, --no-migrate" in out and "--private-reads, --no-private-reads" in out


def test_switches_need_no_value_and_env_and_ini_still_set_them(tmp_path, monkeypatch):
    from faafo.api.main import build_parser
    from faafo.config import settings_from_args

    def settings(*argv, config=None):
        extra = ["--config-file", str(config)] if config else []
        args = build_parser().parse_args(["--data-dir", str(tmp_path), *extra, *argv])
        return settings_from_args(ApiSettings, args)

    assert (settings().migrate, settings().private_reads) == (True, False)
    assert settings("--no-migrate", "--private-reads").migrate is False
    assert settings("--private-reads", "migrate").private_reads is True
    args = build_parser().parse_args(["--private-reads", "migrate"])
    assert args.command == "migrate", "a switch does not swallow the next word"
    monkeypatch.setenv("FAAFO_MIGRATE", "false")
    assert settings().migrate is False
    assert settings("--migrate").migrate is True, "the flag wins over the environment"
    monkeypatch.delenv("FAAFO_MIGRATE")
    ini = write_ini(tmp_path, "[api]\nprivate_reads = true\n")
    assert settings(config=ini).private_reads is True
    assert settings("--no-private-reads", config=ini).private_reads is False


def test_the_hidden_test_option_still_works(tmp_path):
    from faafo.api.main import build_parser
    from faafo.config import settings_from_args

    args = build_parser().parse_args(["--test-delay-before-publish", "2.5"])
    assert settings_from_args(ApiSettings, args).test_delay_before_publish == 2.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[DEFAULT]\nbind_prot = 80\n",
            "unknown option 'bind_prot' in [DEFAULT] (did you mean bind_port?)",
        ),
        ("[api]\nmax_pixel = 5\n", "unknown option 'max_pixel' in [api]"),
        ("[api]\nendpoint_url = http://x\n", "'endpoint_url' in [api] is not read by this program"),
        ("[API]\nbind_port = 80\n", "unknown section [API]"),
    ],
)
def test_unknown_ini_options_name_the_option_and_the_file(tmp_path, text, message):
    from faafo.config import ConfigurationError

    ini = write_ini(tmp_path, text)
    with pytest.raises(ConfigurationError) as error:
        load_settings(ApiSettings, {"data_dir": tmp_path}, ini)
    assert message in str(error.value) and str(ini) in str(error.value)


def test_one_file_configures_a_whole_host(tmp_path):
    ini = write_ini(
        tmp_path,
        "[DEFAULT]\ntransport_url = amqp://mq//\nendpoint_url = http://api:80\n"
        "[api]\nbind_port = 81\n[worker]\nconcurrency = 3\n[client]\nanything = 1\n",
    )
    assert load_settings(ApiSettings, {"data_dir": tmp_path}, ini).bind_port == 81
    assert load_settings(WorkerSettings, {"data_dir": tmp_path}, ini).concurrency == 3


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"log_level": "BOGUS"}, "log level must be one of"),
        ({"log_format": "yaml"}, "log format must be text or json"),
        ({"transport_url": "bogus://"}, "unknown queue transport 'bogus'"),
        ({"transport_url": "notaurl"}, "is not a queue URL"),
        ({"database_url": "nonsense"}, "is not a database URL"),
        ({"database_url": "oracle://u:pw@h/db"}, "unsupported database 'oracle'"),
    ],
)
def test_bad_values_are_refused_when_the_settings_are_built(tmp_path, values, message):
    with pytest.raises(ValueError, match=message):
        load_settings(ApiSettings, {"data_dir": tmp_path, **values})


def test_database_url_errors_hide_the_password(tmp_path):
    with pytest.raises(ValueError) as error:
        load_settings(ApiSettings, {"data_dir": tmp_path, "database_url": "oracle://u:pw1@h/db"})
    assert "pw1" not in str(error.value) and "u:***@h" in str(error.value)


def test_worker_endpoints_must_be_http_urls(tmp_path):
    with pytest.raises(ValueError, match="'notaurl' is not an http"):
        load_settings(WorkerSettings, {"data_dir": tmp_path, "endpoint_url": "notaurl"})
    with pytest.raises(ValueError, match="'ftp://b' is not an http"):
        load_settings(WorkerSettings, {"data_dir": tmp_path, "endpoint_url": "http://a,ftp://b"})
    ok = load_settings(
        WorkerSettings, {"data_dir": tmp_path, "endpoint_url": "http://a,https://[::1]:8"}
    )
    assert ok.endpoint_url == "http://a,https://[::1]:8"


def test_log_options_accept_any_case(tmp_path):
    settings = load_settings(
        ApiSettings, {"data_dir": tmp_path, "log_format": "JSON", "log_level": "debug"}
    )
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
