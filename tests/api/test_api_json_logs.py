"""The API's logs with ``--log-format json``: one JSON object a line, and each line
about a task carries that task's uuid in ``task``, so one task can be followed
across services. Plain text stays the default.

The root logger is set up as ``faafo-api`` does (:func:`faafo.logs.setup`), then
its handler is pointed at a buffer; tests/conftest.py puts the root logger back.
"""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from api.conftest import png_bytes, sha, task
from faafo import logs
from faafo.api import main as api_main

CLIENT, WORKER = "client-secret-token", "worker-secret-token"


def capture(fmt: str | None) -> io.StringIO:
    """Set up logging as the API's main() does and capture what the root handler writes."""
    if fmt is None:
        logs.setup("api", "INFO")
    else:
        logs.setup("api", "INFO", fmt)
    (handler,) = logging.getLogger().handlers
    buffer = io.StringIO()
    handler.setStream(buffer)
    return buffer


def json_lines(buffer: io.StringIO) -> list[dict]:
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    assert lines, "the API logged nothing"
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object on its own
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def about(entries: list[dict], start: str) -> list[dict]:
    return [e for e in entries if e["message"].startswith(start)]


def drive_tasks(client) -> tuple[str, str]:
    """Create two tasks, claim both, deliver a result for one and report the other failed."""
    created = client.post("/v1/fractal", json=[task(), task()])
    assert created.status_code == 201, created.text
    done, failed = (o["uuid"] for o in created.json()["objects"])
    claims = client.post("/v1/worker/claim", json={"worker": "w1", "uuids": [done, failed]})
    assert [c["render"] for c in claims.json()] == [True, True]
    png = png_bytes()
    meta = [{"uuid": done, "checksum": sha(png), "duration": 0.1, "generated_by": "w1"}]
    files = [("meta", (None, json.dumps(meta), "application/json"))]
    files.append((done, (f"{done}.png", png, "image/png")))
    assert client.post("/v1/worker/results", files=files).json() == {done: "stored"}
    reported = client.post(
        "/v1/worker/failures", json=[{"uuid": failed, "error": "boom", "worker": "w1"}]
    )
    assert reported.json() == {"failed": 1}
    return done, failed


def test_json_lines_about_a_task_carry_its_uuid(client):
    buffer = capture("json")
    done, failed = drive_tasks(client)
    logging.getLogger("faafo.api").info("a line about no task")
    entries = json_lines(buffer)

    for entry in entries:
        assert {"time", "level", "service", "logger", "message"} <= set(entry), entry
        assert entry["service"] == "api"
        assert entry["time"].endswith("Z")

    created = about(entries, "task created")
    assert sorted(e["task"] for e in created) == sorted([done, failed])
    assert all(e["level"] == "info" for e in created)
    assert all(e["logger"] == "faafo.api.services" for e in created)

    claimed = about(entries, "claimed by w1")
    assert sorted(e["task"] for e in claimed) == sorted([done, failed])

    (result,) = about(entries, "result from w1")
    assert result["task"] == done
    assert result["message"].startswith("result from w1: stored")

    (failure,) = about(entries, "failed: boom")
    assert failure["task"] == failed
    assert failure["level"] == "warning"
    assert failure["message"] == "failed: boom (worker w1)"

    (outside,) = about(entries, "a line about no task")
    assert "task" not in outside and "tasks" not in outside, "the task context did not leak"


def test_json_lines_about_a_bundle_carry_its_uuids(client):
    """A line logged for several tasks at once lists them in ``tasks``."""
    buffer = capture("json")
    uuids = [client.post("/v1/fractal", json=task()).json()["uuid"] for _ in range(5)]
    with logs.tasks_context(uuids):
        logging.getLogger("faafo.api").info("about five tasks")
    (entry,) = about(json_lines(buffer), "about five tasks")
    assert entry["tasks"] == uuids and "task" not in entry


def test_text_is_the_default_with_the_uuid_at_the_end(client):
    buffer = capture(None)
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    lines = [line for line in buffer.getvalue().splitlines() if line.strip()]
    assert lines
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    (line,) = [line for line in lines if "task created" in line]
    assert " INFO api faafo.api.services: task created: 32x24, 64 iterations" in line
    assert line.endswith(f" [task {uuid}]")


@pytest.fixture
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("FAAFO_"):
            monkeypatch.delenv(name)


def run_api_main(tmp_path, capsys, *flags: str) -> list[str]:
    """``faafo-api ... migrate`` in-process (it exits before serving); its stderr lines.

    Tokens given as flags make it log a warning, so there is something to read.
    """
    argv = ["--data-dir", str(tmp_path / "data"), *flags]
    argv += ["--client-token", CLIENT, "--worker-token", WORKER, "migrate"]
    assert api_main.main(argv) == 0
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.strip()]


def test_faafo_api_log_format_json_writes_json_lines(tmp_path, capsys, clean_environment):
    lines = run_api_main(tmp_path, capsys, "--log-format", "json")
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) and e["service"] == "api" for e in entries)
    warned = [e for e in entries if "was given on the command line" in e["message"]]
    assert len(warned) == 2 and all(e["level"] == "warning" for e in warned)
    assert all(e["logger"] == "faafo.api.auth" for e in warned)


def test_faafo_api_logs_text_by_default(tmp_path, capsys, clean_environment):
    lines = run_api_main(tmp_path, capsys)
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
    warned = [line for line in lines if "was given on the command line" in line]
    assert len(warned) == 2
    assert all(" WARNING api faafo.api.auth: --" in line for line in warned)
