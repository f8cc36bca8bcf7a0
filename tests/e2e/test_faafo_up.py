"""``faafo up`` on the embedded default, driven through the ``faafo`` CLI as a user would."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest

from support.processes import free_port, wait_http, wait_until


class Up:
    def __init__(self, tmp_path, data_dir, port):
        self.log = open(tmp_path / f"up-{port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faafo.client.cli",
                "up",
                "--data-dir",
                str(data_dir),
                "--bind-port",
                str(port),
                "--workers",
                "2",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = tmp_path / f"up-{port}.log"

    def wait(self):
        wait_http(self.url + "/readyz", timeout=90)
        wait_until(
            lambda: b"faafo is running at" in self.log_path.read_bytes(), 30, message="banner"
        )

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=90)
        self.log.close()
        return code


def faafo(url, *args, check=True, config=None):
    env = {**os.environ, "FAAFO_ENDPOINT_URL": url}
    if config is not None:
        env["XDG_CONFIG_HOME"] = str(config)
    result = subprocess.run(
        [sys.executable, "-m", "faafo.client.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    if check:
        assert result.returncode == 0, f"faafo {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture
def up(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    instance = Up(tmp_path, data_dir, port)
    instance.wait()
    yield instance, data_dir, port, tmp_path
    if instance.process.poll() is None:
        instance.stop()


def test_create_wait_list_show_get_delete_and_restart(up):
    instance, data_dir, port, tmp_path = up
    url = instance.url
    config = tmp_path / "config"
    refused = faafo(url, "create", "--tasks", "1", check=False, config=tmp_path / "elsewhere")
    assert refused.returncode == 1 and "token" in refused.stderr, "faafo up is not open to anyone"

    def cli(*args, **kwargs):
        return faafo(*args, config=config, **kwargs)

    created = cli(
        url,
        "create",
        "--tasks",
        "6",
        "--width",
        "120",
        "--height",
        "90",
        "--iterations",
        "64",
        "--wait",
        "--json",
    )
    body = json.loads(created.stdout)
    uuids = [o["uuid"] for o in body["objects"]]
    assert len(uuids) == 6 and all(o["status"] == "done" for o in body["objects"])
    listing = cli(url, "list").stdout
    for uuid in uuids:
        assert uuid in listing
    assert "120 x 90 pixels" in listing and "done" in listing
    shown = cli(url, "show", uuids[0]).stdout
    for label in (
        "uuid",
        "duration",
        "dimensions",
        "iterations",
        "checksum",
        "generated_by",
        "status",
        "c",
    ):
        assert label in shown
    record = json.loads(cli(url, "show", uuids[0], "--json").stdout)
    out = tmp_path / "one.png"
    cli(url, "get", uuids[0], "-o", str(out))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == record["checksum"]
    cli(url, "delete", uuids[1])
    gone = cli(url, "show", uuids[1], check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr and "Traceback" not in gone.stderr

    assert instance.stop() == 0, "Ctrl-C stops cleanly"
    again = type(instance)(tmp_path, data_dir, port)
    again.wait()
    try:
        kept = json.loads(cli(url, "list", "--json").stdout)
        assert sorted(r["uuid"] for r in kept) == sorted(set(uuids) - {uuids[1]})
        assert cli(url, "get", uuids[0], "-o", str(tmp_path / "again.png")).returncode == 0
    finally:
        assert again.stop() == 0


def test_cli_errors_are_one_line(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["list"],
        ["show", "3c1d7d7e-0000-4000-8000-000000000000"],
        ["create", "--width", "0"],
        ["show", "not-a-uuid"],
        ["create", "--xa", "nan"],
    ):
        result = faafo(dead, *args, check=False)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
