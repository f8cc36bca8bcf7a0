"""Where a service's settings come from, through its real parser and service_settings():
the system INI file when no --config-file is given, a given --config-file instead of
it, and FAAFO_LISTEN_ADDRESS / FAAFO_BIND_PORT below the flags.
"""

from __future__ import annotations

import pytest

from faafo import config
from faafo.api.main import build_parser as api_parser
from faafo.config import ApiSettings, ConfigurationError, WorkerSettings, service_settings
from faafo.worker.main import build_parser as worker_parser

PARSERS = {ApiSettings: api_parser, WorkerSettings: worker_parser}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No FAAFO_* from the caller, no real /etc/faafo/faafo.conf, data under tmp_path."""
    for name in list(ApiSettings.model_fields) + list(WorkerSettings.model_fields):
        monkeypatch.delenv(f"FAAFO_{name.upper()}", raising=False)
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", tmp_path / "absent" / "faafo.conf")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def settings(cls, *argv: str):
    return service_settings(cls, PARSERS[cls]().parse_args(list(argv)))


@pytest.fixture
def system_file(monkeypatch, tmp_path):
    path = tmp_path / "etc" / "faafo.conf"
    path.parent.mkdir()
    path.write_text(
        "[DEFAULT]\n"
        "transport_url = amqp://system:pw@mq.system:5672//\n"
        "[api]\n"
        "listen_address = 10.0.0.1\n"
        "bind_port = 8181\n"
        "[worker]\n"
        "endpoint_url = http://api.system:8181\n"
    )
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", path)
    return path


@pytest.fixture
def given_file(tmp_path):
    path = tmp_path / "given.conf"
    path.write_text(
        "[DEFAULT]\n"
        "transport_url = amqp://given:pw@mq.given:5672//\n"
        "[api]\n"
        "bind_port = 9191\n"
        "[worker]\n"
        "endpoint_url = http://api.given:9191\n"
    )
    return path


def test_without_a_system_file_the_defaults_apply():
    api = settings(ApiSettings)
    assert (api.listen_address, api.bind_port) == ("0.0.0.0", 8080)
    assert api.transport_url.startswith("embedded://")
    assert settings(WorkerSettings).endpoint_url == "http://localhost:8080"


def test_api_reads_the_system_file_when_no_config_file_is_given(system_file):
    api = settings(ApiSettings)
    assert api.listen_address == "10.0.0.1"
    assert api.bind_port == 8181
    assert api.transport_url == "amqp://system:pw@mq.system:5672//", "[DEFAULT] is read too"


def test_worker_reads_the_system_file_when_no_config_file_is_given(system_file):
    worker = settings(WorkerSettings)
    assert worker.endpoint_url == "http://api.system:8181"
    assert worker.transport_url == "amqp://system:pw@mq.system:5672//"


def test_a_given_config_file_wins_over_the_system_file(system_file, given_file):
    api = settings(ApiSettings, "--config-file", str(given_file))
    assert api.bind_port == 9191
    assert api.transport_url == "amqp://given:pw@mq.given:5672//"
    # The system file is not read at all, not merged underneath: its listen_address is gone.
    assert api.listen_address == "0.0.0.0"
    worker = settings(WorkerSettings, "--config-file", str(given_file))
    assert worker.endpoint_url == "http://api.given:9191"
    assert worker.transport_url == "amqp://given:pw@mq.given:5672//"


def test_a_bad_system_file_is_reported_naming_it(system_file):
    # Proof that it is read: a broken one stops the service with one line naming the file.
    system_file.write_text("[api]\nbind_prot = 1\n")
    with pytest.raises(ConfigurationError) as error:
        settings(ApiSettings)
    assert str(system_file) in str(error.value) and "bind_prot" in str(error.value)
    # A given, valid file means the broken system file is never opened.
    good = system_file.parent / "good.conf"
    good.write_text("[api]\nbind_port = 1\n")
    assert settings(ApiSettings, "--config-file", str(good)).bind_port == 1


def test_env_and_flags_beat_the_system_file(system_file, monkeypatch):
    monkeypatch.setenv("FAAFO_BIND_PORT", "8282")
    assert settings(ApiSettings).bind_port == 8282
    assert settings(ApiSettings, "--bind-port", "8383").bind_port == 8383
    assert settings(ApiSettings).listen_address == "10.0.0.1", "unset in env: the file's"


def test_listen_address_and_bind_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("FAAFO_LISTEN_ADDRESS", "192.0.2.7")
    monkeypatch.setenv("FAAFO_BIND_PORT", "8765")
    api = settings(ApiSettings)
    assert api.listen_address == "192.0.2.7"
    assert api.bind_port == 8765
    assert isinstance(api.bind_port, int)


def test_flags_beat_the_environment(monkeypatch):
    monkeypatch.setenv("FAAFO_LISTEN_ADDRESS", "192.0.2.7")
    monkeypatch.setenv("FAAFO_BIND_PORT", "8765")
    api = settings(ApiSettings, "--listen-address", "127.0.0.5", "--bind-port", "8001")
    assert (api.listen_address, api.bind_port) == ("127.0.0.5", 8001)
    # One flag given: the other still comes from the environment.
    api = settings(ApiSettings, "--bind-port", "8002")
    assert (api.listen_address, api.bind_port) == ("192.0.2.7", 8002)


def test_a_bad_bind_port_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("FAAFO_BIND_PORT", "70000")
    with pytest.raises(ConfigurationError) as error:
        settings(ApiSettings)
    assert "--bind-port" in str(error.value)
    # The flag overrides the bad value, so the service starts.
    assert settings(ApiSettings, "--bind-port", "8003").bind_port == 8003
