"""``faafo autoscale`` refuses a taken metrics port in one line, before any worker starts."""

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
