"""``faafo autoscale`` refuses bad settings in one line: a taken metrics port before any
worker starts, an unknown log level before anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def test_taken_metrics_port_is_one_line_and_starts_no_worker(tmp_path):
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "faafo.client.cli",
                "autoscale",
                "--metrics-port",
                str(port),
                "--data-dir",
                str(tmp_path / "data"),
                "--endpoint-url",
                "http://127.0.0.1:9",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        )
    finally:
        holder.close()
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"faafo: error: --metrics-port {port}:"), lines
    assert "Traceback" not in result.stderr
    assert "worker" not in result.stderr.lower()


def test_bad_log_level_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "faafo.client.cli", "autoscale", "--log-level", "loud"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
    )
    assert result.returncode == 2, result
    assert result.stderr.strip() == (
        "faafo: error: --log-level: log level must be one of "
        "DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'"
    ), result.stderr
