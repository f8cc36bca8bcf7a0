"""``faafo show UUID``: besides the original's Parameter | Value rows, the task's
status, its Julia constant c and its timings; ``--json`` carries the same fields.

The records are built with the API's own response model, so they have exactly
the shape ``GET /v1/fractal/UUID`` answers with.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from rich.console import Console

from faafo.api.schemas import FractalOut
from faafo.client import cli, output

UUID = "0f599654-ea1c-477a-a6da-4042f51e1b80"
CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
STARTED = datetime(2024, 5, 1, 12, 0, 3, 250000, tzinfo=UTC)
FINISHED = datetime(2024, 5, 1, 12, 0, 4, 750000, tzinfo=UTC)
CHECKSUM = "ab" * 32


def record(**overrides) -> dict:
    """A finished Julia fractal, as the API serialises it."""
    fields = {
        "uuid": UUID,
        "width": 640,
        "height": 480,
        "iterations": 256,
        "xa": -1.5,
        "xb": 1.5,
        "ya": -1.0,
        "yb": 1.0,
        "duration": 1.5,
        "size": 12345,
        "checksum": CHECKSUM,
        "generated_by": "worker-7",
        "url": f"/fractal/{UUID}",
        "status": "done",
        "kind": "julia",
        "palette": "faafo",
        "c_real": -0.8,
        "c_imag": 0.156,
        "seed": None,
        "attempts": 1,
        "created_at": CREATED,
        "started_at": STARTED,
        "finished_at": FINISHED,
    }
    fields.update(overrides)
    return FractalOut(**fields).model_dump(mode="json")


def rendered_rows(row: dict) -> dict[str, str]:
    """The table ``faafo show`` prints, read back as label -> value from its text."""
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None, soft_wrap=False).print(
        output.show_table(row)
    )
    rows: dict[str, str] = {}
    for line in buffer.getvalue().splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 4 and cells[0] == "" and cells[3] == "":
            label, value = cells[1], cells[2]
            assert label not in rows, f"row {label!r} appears twice"
            rows[label] = value
    return rows


def test_the_api_record_shape_is_what_the_test_assumes():
    row = record()
    assert row["created_at"] == "2024-05-01T12:00:00Z"
    assert row["started_at"] == "2024-05-01T12:00:03.250000Z"
    assert row["finished_at"] == "2024-05-01T12:00:04.750000Z"
    assert (row["c_real"], row["c_imag"]) == (-0.8, 0.156)


def test_show_keeps_the_original_rows():
    rows = rendered_rows(record())
    assert rows["uuid"] == UUID
    assert rows["dimensions"] == "640 x 480 pixels"
    assert rows["iterations"] == "256"
    assert (rows["xa"], rows["xb"], rows["ya"], rows["yb"]) == ("-1.5", "1.5", "-1.0", "1.0")
    assert rows["duration"] == "1.500000 seconds"
    assert rows["size"] == "12345 bytes"
    assert rows["checksum"] == CHECKSUM
    assert rows["generated_by"] == "worker-7"


def test_show_has_the_status_the_constant_and_the_timings_rows():
    rows = rendered_rows(record())
    assert rows["status"] == "done"
    assert rows["c"] == "-0.8 + 0.156i"
    assert rows["created"] == "2024-05-01T12:00:00Z"
    assert rows["started"] == "2024-05-01T12:00:03.250000Z"
    assert rows["finished"] == "2024-05-01T12:00:04.750000Z"
    assert rows["kind"] == "julia" and rows["palette"] == "faafo"
    assert rows["attempts"] == "1"
    assert rows["seed"] == "-"
    assert "error" not in rows, "no error row for a task that did not fail"
    labels = list(rows)
    assert labels.index("uuid") < labels.index("status") < labels.index("dimensions")
    assert labels[-3:] == ["created", "started", "finished"]


def test_a_negative_imaginary_part_is_written_with_a_minus():
    rows = rendered_rows(record(c_real=0.285, c_imag=-0.01))
    assert rows["c"] == "0.285 - 0.01i"


def test_a_failed_task_shows_its_status_and_error():
    rows = rendered_rows(
        record(
            status="failed",
            error="boom (worker w9)",
            duration=None,
            size=None,
            checksum=None,
            generated_by=None,
            attempts=3,
        )
    )
    assert rows["status"] == "failed"
    assert rows["error"] == "boom (worker w9)"
    assert rows["attempts"] == "3"
    assert rows["duration"] == "-" and rows["size"] == "-" and rows["checksum"] == "-"
    assert rows["finished"] == "2024-05-01T12:00:04.750000Z"


def test_a_queued_task_without_a_constant_shows_dashes():
    rows = rendered_rows(
        record(
            status="queued",
            kind="mandelbrot",
            c_real=None,
            c_imag=None,
            duration=None,
            size=None,
            checksum=None,
            generated_by=None,
            attempts=0,
            started_at=None,
            finished_at=None,
        )
    )
    assert rows["status"] == "queued"
    assert rows["kind"] == "mandelbrot"
    assert rows["c"] == "-"
    assert rows["created"] == "2024-05-01T12:00:00Z"
    assert rows["started"] == "-" and rows["finished"] == "-"


class FakeClient:
    """Stands in for FaafoClient in ``faafo.client.cli.main``: answers ``get`` with a record."""

    asked: list[str] = []
    answer: dict = {}

    def __init__(self, endpoint: str, token: str | None = None) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def get(self, uuid: str) -> dict:
        FakeClient.asked.append(uuid)
        return FakeClient.answer


@pytest.fixture
def fake_api(monkeypatch):
    monkeypatch.delenv("FAAFO_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("FAAFO_CLIENT_TOKEN", "t")  # no credentials file is looked up
    monkeypatch.setattr(cli, "FaafoClient", FakeClient)
    monkeypatch.setattr(FakeClient, "asked", [])
    monkeypatch.setattr(FakeClient, "answer", record())
    return FakeClient


def test_faafo_show_prints_the_status_constant_and_timings_rows(fake_api, capsys):
    assert cli.main(["show", UUID]) == 0
    out = capsys.readouterr().out
    assert fake_api.asked == [UUID]
    lines = {
        cells[1].strip(): cells[2].strip()
        for cells in (line.split("│") for line in out.splitlines())
        if len(cells) == 4
    }
    assert lines["status"] == "done"
    assert lines["c"] == "-0.8 + 0.156i"
    assert lines["created"] == "2024-05-01T12:00:00Z"
    assert lines["started"] == "2024-05-01T12:00:03.250000Z"
    assert lines["finished"] == "2024-05-01T12:00:04.750000Z"
    assert lines["duration"] == "1.500000 seconds"


@pytest.mark.parametrize("argv", [["show", UUID, "--json"], ["--json", "show", UUID]])
def test_faafo_show_json_carries_status_constant_and_timings(fake_api, capsys, argv):
    assert cli.main(argv) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == record(), "--json is the API's record, unchanged"
    assert shown["status"] == "done"
    assert (shown["c_real"], shown["c_imag"]) == (-0.8, 0.156)
    assert shown["created_at"] == "2024-05-01T12:00:00Z"
    assert shown["started_at"] == "2024-05-01T12:00:03.250000Z"
    assert shown["finished_at"] == "2024-05-01T12:00:04.750000Z"
    assert shown["duration"] == 1.5
