"""``faafo up --autoscale 1:4``: a burst grows the pool, the drain shrinks it back to one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid as uuidlib

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support.processes import free_port, wait_http, wait_until


def test_burst_scales_out_and_back(tmp_path):
    port = free_port()
    log_path = tmp_path / "up.log"
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with open(log_path, "ab") as log:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faafo.client.cli",
                "up",
                "--data-dir",
                str(tmp_path / "data"),
                "--bind-port",
                str(port),
                "--autoscale",
                "1:4",
                "--autoscale-down-cooldown",
                "4",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/readyz", timeout=90)
        token = json.loads((tmp_path / "data" / "tokens.json").read_text())["client_token"]
        headers = {"Authorization": f"Bearer {token}"}
        batch = str(uuidlib.uuid4())
        burst = [
            {
                "width": 200,
                "height": 200,
                "iterations": 2000,
                "xa": -1.5,
                "xb": 1.5,
                "ya": -1.0,
                "yb": 1.0,
                "c_real": -0.8,
                "c_imag": 0.156,
                "batch": batch,
            }
            for _ in range(300)
        ]
        assert (
            httpx.post(url + "/v1/fractal", json=burst, headers=headers, timeout=60).status_code
            == 201
        )

        def finished() -> bool:
            return httpx.get(f"{url}/v1/batch/{batch}").json()["finished"]

        wait_until(finished, 240, interval=0.5, message="burst drained")
        text = log_path.read_text()
        sizes = [int(m) for m in re.findall(r"autoscale: \d+ -> (\d+) workers", text)]
        assert sizes and max(sizes) > 1, text[-3000:]
        status = httpx.get(f"{url}/v1/batch/{batch}").json()
        assert status["counts"] == {"done": 300}
        samples = {
            s.name: s.value
            for f in text_string_to_metric_families(httpx.get(url + "/metrics").text)
            for s in f.samples
            if not s.labels
        }
        assert samples.get("faafo_results_duplicate_total", 0) == 0, "every task completed once"
        wait_until(
            lambda: re.findall(r"autoscale: \d+ -> (\d+) workers", log_path.read_text())[-1] == "1",
            60,
            interval=0.5,
            message="pool back to one worker",
        )
        time.sleep(1)
        text = log_path.read_text()
        started = re.findall(r"supervisor: started worker", text)
        stopped = re.findall(r"supervisor: worker \S+ stopped$", text, re.MULTILINE)
        assert len(started) - len(stopped) == 1, text[-3000:]
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
