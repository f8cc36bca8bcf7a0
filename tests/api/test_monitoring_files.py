"""The dashboard and alert rules only name metrics the services really export."""

from __future__ import annotations

import json
import re
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
