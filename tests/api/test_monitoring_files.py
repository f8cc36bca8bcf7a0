"""The dashboard and alert rules only name metrics the services really export."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from faafo.autoscale.controller import AutoscaleMetrics
from faafo.worker.metrics import WorkerMetrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def exported_names(api_client) -> set[str]:
    names: set[str] = set()
    for registry in (WorkerMetrics("w").registry, AutoscaleMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(api_client.get("/metrics").text):
        names.add(family.name)
    return names


def referenced(text: str) -> set[str]:
    found = set()
    for name in re.findall(r"\bfaafo_[a-z_]+", text):
        for suffix in SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        found.add(name)
    return found


def test_files_parse_and_name_real_metrics(client):
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"FaafoBacklogGrowing", "FaafoWorkerErrors", "FaafoApi5xx"} <= alerts
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["panels"]
    yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    names = exported_names(client)
    text = (MONITORING / "alerts.yml").read_text() + (
        MONITORING / "grafana-dashboard.json"
    ).read_text()
    missing = referenced(text) - names
    assert not missing, f"unknown metrics: {sorted(missing)}"


def families(api_client) -> dict[str, set[tuple[str, str]]]:
    """Each exported family name: which component exports it, with which type."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, set[tuple[str, str]]] = {}
    for component, registry in (
        ("worker", WorkerMetrics("w").registry),
        ("autoscaler", AutoscaleMetrics().registry),
    ):
        for family in registry.collect():
            found.setdefault(family.name, set()).add((component, family.type))
    for family in text_string_to_metric_families(api_client.get("/metrics").text):
        found.setdefault(family.name, set()).add(("api", family.type))
    return found


def test_no_metric_name_means_two_things(client):
    """One name, one meaning: a dashboard summing a name over every job must not mix kinds.

    (The API once exported a gauge ``faafo_worker_tasks`` while workers export
    a counter family of the same name.)
    """
    shared = {name: owners for name, owners in families(client).items() if len(owners) > 1}
    assert not shared, f"exported by several components: {shared}"


def test_not_ready_alert_watches_readiness_not_only_up():
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    by_name = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    expr = by_name["FaafoApiNotReady"]["expr"]
    assert "faafo_ready" in expr and "== 0" in expr, expr


def test_prometheus_scrapes_workers_where_install_serves_and_opens_metrics():
    """prometheus.yml's worker port is the one install.sh configures and its firewall opens."""
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ports = {
        target.rsplit(":", 1)[1]
        for static in jobs["faafo-worker"]["static_configs"]
        for target in static["targets"]
    }
    install = MONITORING.parent / "install.sh"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    rules = subprocess.run(
        ["bash", str(install), "-P", "firewall", "-f", "worker", "-a", "prometheus=192.0.2.9"],
        env=env, capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    opened = set(re.findall(r"-s 192\.0\.2\.9 --dport (\d+) -j ACCEPT", rules))
    assert ports == opened == {"9100"}, (ports, opened)
    script = install.read_text()
    # The config install.sh writes for a worker takes its port from the one default.
    assert re.search(r"^WORKER_METRICS_PORT_DEFAULT=(\d+)$", script, re.M).group(1) == "9100"
    assert 'opt worker metrics_port "$WORKER_METRICS_PORT_DEFAULT"' in script
