"""``faafo up --autoscale 1:4``: a burst grows the pool, the drain shrinks it back to one,
and a steady trickle afterwards changes nothing."""

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

DECISION = re.compile(r"autoscale: (\d+) -> (\d+) workers")


def _autoscale_metrics(port: int) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, s.labels.get("direction", "")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in ("faafo_autoscale_workers", "faafo_autoscale_decisions_total")
    }


def test_burst_scales_out_and_back(tmp_path):
    port, metrics_port = free_port(), free_port()
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
                "--autoscale-metrics-port",
                str(metrics_port),
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
        decisions = len(DECISION.findall(text))
        metrics = _autoscale_metrics(metrics_port)
        assert metrics[("faafo_autoscale_workers", "")] == 1
        ups = metrics[("faafo_autoscale_decisions_total", "up")]
        downs = metrics[("faafo_autoscale_decisions_total", "down")]
        assert ups >= 1 and downs >= 1 and ups + downs == decisions, (metrics, decisions)

        # A steady trickle that one worker keeps up with: well over the down
        # cooldown (4 s) of small tasks, two a second. The pool must not move.
        trickle = str(uuidlib.uuid4())
        for _ in range(40):
            task = {**burst[0], "batch": trickle, "iterations": 200}
            created = httpx.post(url + "/v1/fractal", json=task, headers=headers, timeout=30)
            assert created.status_code == 201, created.text
            time.sleep(0.5)
        wait_until(
            lambda: httpx.get(f"{url}/v1/batch/{trickle}").json()["finished"],
            120,
            interval=0.5,
            message="trickle drained",
        )
        text = log_path.read_text()
        assert len(DECISION.findall(text)) == decisions, text[-3000:]
        assert _autoscale_metrics(metrics_port)[("faafo_autoscale_workers", "")] == 1
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
