"""The ``faafo`` CLI against a real ``faafo-api`` process: output formats and downloads.

Tasks are created through the API, and results delivered as a worker would
(``PUT`` of a PNG), so the records have known sizes, durations and workers.
Each test works in a batch of its own, so the tests of this module share one API.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from faafo.client.cli import REQUEST_CHUNK, main
from support.processes import start_api

TASK = {"width": 4, "height": 3, "iterations": 8, "xa": -1.5, "xb": 1.5, "ya": -1.0, "yb": 1.0}


@dataclass
class Api:
    url: str

    def create(self, batch: str, count: int = 1) -> list[str]:
        body = [{**TASK, "batch": batch} for _ in range(count)]
        response = httpx.post(f"{self.url}/v1/fractal", json=body)
        assert response.status_code == 201, response.text
        return [row["uuid"] for row in response.json()["objects"]]

    def deliver(self, uuid: str, png: bytes, worker: str = "test-worker") -> None:
        response = httpx.put(
            f"{self.url}/v1/fractal/{uuid}",
            content=png,
            params={
                "checksum": hashlib.sha256(png).hexdigest(),
                "duration": 0.1,
                "generated_by": worker,
            },
            headers={"content-type": "image/png"},
        )
        assert response.json()["result"] == "stored", response.text

    def record(self, uuid: str) -> dict:
        return httpx.get(f"{self.url}/v1/fractal/{uuid}").json()


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), colour).save(out, format="PNG")
    return out.getvalue()


PNG = png_bytes((200, 40, 40))


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    service, _, url = start_api("api-cli-output", tmp_path_factory.mktemp("cli-output"))
    try:
        yield Api(url)
    finally:
        service.stop()


@pytest.fixture
def cli(api, monkeypatch, tmp_path) -> Api:
    monkeypatch.setenv("FAAFO_ENDPOINT_URL", api.url)
    monkeypatch.delenv("FAAFO_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    return api


@pytest.fixture
def done(cli) -> str:
    """A finished fractal whose image is PNG."""
    [uuid] = cli.create(str(uuidlib.uuid4()))
    cli.deliver(uuid, PNG)
    return uuid


def run(argv: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table: the cells between the vertical bars."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in text.splitlines()
        if "│" in line
    ]


# -- list and show ------------------------------------------------------------------------


def test_list_rows_and_filters(cli, capsys):
    batch = str(uuidlib.uuid4())
    finished, waiting = cli.create(batch, 2)
    worker = f"worker-{uuidlib.uuid4().hex[:8]}"
    cli.deliver(finished, PNG, worker)
    code, out, err = run(["list", "--batch", batch], capsys)
    assert code == 0, err
    assert sorted(table_rows(out)) == sorted(
        [
            [finished, "4 x 3 pixels", f"{len(PNG)} bytes", "done"],
            [waiting, "4 x 3 pixels", "-", "queued"],
        ]
    )
    header = [cell.strip() for cell in out.splitlines()[1].split("┃")[1:-1]]
    assert header == ["UUID", "Dimensions", "Filesize", "Status"]
    _, out, _ = run(["list", "--batch", batch, "--status", "queued"], capsys)
    assert [row[0] for row in table_rows(out)] == [waiting]
    _, out, _ = run(["list", "--generated-by", worker], capsys)
    assert [row[0] for row in table_rows(out)] == [finished]
    _, out, _ = run(["list", "--generated-by", worker, "--json"], capsys)
    [row] = json.loads(out)
    assert (row["uuid"], row["generated_by"], row["size"]) == (finished, worker, len(PNG))


def test_list_follows_every_page(cli, capsys):
    batch = str(uuidlib.uuid4())
    uuids = cli.create(batch, 230)  # the CLI asks 100 a page
    code, out, err = run(["list", "--batch", batch, "--json"], capsys)
    assert code == 0, err
    assert sorted(row["uuid"] for row in json.loads(out)) == sorted(uuids)


def test_show_rows(cli, done, capsys):
    code, out, err = run(["show", done], capsys)
    assert code == 0, err
    rows = dict(table_rows(out))
    record = cli.record(done)
    assert rows["uuid"] == done
    assert rows["status"] == "done"
    assert rows["duration"] == "0.100000 seconds"
    assert rows["dimensions"] == "4 x 3 pixels"
    assert rows["iterations"] == "8"
    assert (rows["xa"], rows["xb"], rows["ya"], rows["yb"]) == ("-1.5", "1.5", "-1.0", "1.0")
    assert rows["size"] == f"{len(PNG)} bytes"
    assert rows["checksum"] == hashlib.sha256(PNG).hexdigest()
    assert rows["generated_by"] == "test-worker"
    assert rows["kind"] == record["kind"] and rows["palette"] == record["palette"]
    assert list(rows)[:4] == ["uuid", "status", "duration", "dimensions"]


def test_show_of_a_queued_fractal_has_dashes_for_what_is_unknown(cli, capsys):
    [uuid] = cli.create(str(uuidlib.uuid4()))
    code, out, err = run(["show", uuid], capsys)
    assert code == 0, err
    rows = dict(table_rows(out))
    assert rows["status"] == "queued"
    assert rows["duration"] == rows["size"] == rows["checksum"] == "-"


# -- get: where the PNG goes ----------------------------------------------------------


def test_get_json(cli, done, capsys, tmp_path):
    code, out, err = run(["get", done, "--json", "-o", "x.png"], capsys)
    assert code == 0, err
    assert json.loads(out) == {
        "uuid": done,
        "path": "x.png",
        "size": len(PNG),
        "checksum": hashlib.sha256(PNG).hexdigest(),
    }
    assert (tmp_path / "x.png").read_bytes() == PNG


def test_get_to_the_default_name_and_over_an_existing_file(cli, done, capsys, tmp_path):
    code, out, _ = run(["get", done], capsys)
    assert code == 0
    assert out == f"wrote {done}.png ({len(PNG)} bytes, checksum verified)\n"
    assert (tmp_path / f"{done}.png").read_bytes() == PNG
    existing = tmp_path / "old.png"
    existing.write_bytes(b"old content, much longer than the new PNG " * 100)
    existing.chmod(0o640)
    code, _, err = run(["get", done, "-o", str(existing)], capsys)
    assert code == 0, err
    assert existing.read_bytes() == PNG
    assert stat.S_IMODE(existing.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [f"{done}.png", "old.png"]


def test_get_into_a_directory_writes_uuid_png_there(cli, done, capsys, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    code, out, err = run(["get", done, "-o", str(folder)], capsys)
    assert code == 0, err
    assert [p.name for p in folder.iterdir()] == [f"{done}.png"]
    assert (folder / f"{done}.png").read_bytes() == PNG
    assert out.startswith(f"wrote {folder / done}.png ")
    assert [p.name for p in tmp_path.iterdir()] == ["images"]  # no images.part beside it


def test_a_directory_in_the_way_is_an_error_and_left_alone(cli, done, capsys, tmp_path):
    folder = tmp_path / "images"
    (folder / f"{done}.png").mkdir(parents=True)  # the target is a directory: cannot replace
    code, _, err = run(["get", done, "-o", str(folder)], capsys)
    assert code == 1 and err.startswith(f"faafo: error: cannot write {folder / done}.png: ")
    assert [p.name for p in folder.iterdir()] == [f"{done}.png"]


def test_get_through_a_symbolic_link_keeps_the_link(cli, done, capsys, tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    code, _, err = run(["get", done, "-o", str(link)], capsys)
    assert code == 0, err
    assert link.is_symlink() and real.read_bytes() == PNG


def test_get_into_a_fifo_writes_in_place(cli, done, capsys, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as pipe:
            received.append(pipe.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    code, _, err = run(["get", done, "-o", str(fifo)], capsys)
    thread.join(timeout=60)
    assert code == 0, err
    assert received == [PNG]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_get_dash_writes_the_png_to_stdout(cli, done, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "faafo.client.cli", "get", done, "-o", "-"],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == PNG
    assert b"wrote stdout" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_get_dash_with_json_is_a_usage_error(cli, done, capsys):
    code, out, err = run(["get", done, "-o", "-", "--json"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("faafo: error: -o - writes the PNG to stdout")


# -- delete ---------------------------------------------------------------------------------


def test_delete_json_and_text(cli, capsys):
    first, second = cli.create(str(uuidlib.uuid4()), 2)
    code, out, err = run(["delete", first, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == {"uuid": first, "deleted": True}
    code, out, _ = run(["delete", second], capsys)
    assert (code, out) == (0, f"deleted {second}\n")
    for uuid in (first, second):
        assert httpx.get(f"{cli.url}/v1/fractal/{uuid}").status_code == 404


# -- create ---------------------------------------------------------------------------------


def create_requests(url: str) -> float:
    """POSTs to /v1/fractal this API process has answered, from its own metrics."""
    text = httpx.get(f"{url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "faafo_http_requests"
        for sample in family.samples
        if sample.name == "faafo_http_requests_total"
        and sample.labels.get("method") == "POST"
        and sample.labels.get("route") == "/v1/fractal"
    )


def test_create_1000_tasks_takes_few_requests(cli, capsys):
    before = create_requests(cli.url)
    tiny = ["--max-width", "8", "--max-height", "8", "--max-iterations", "8"]
    code, out, err = run(["create", "--tasks", "1000", *tiny, "--json"], capsys)
    assert code == 0, err
    body = json.loads(out)
    assert len(body["objects"]) == 1000
    requests = create_requests(cli.url) - before
    assert requests == -(-1000 // REQUEST_CHUNK) <= 2


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--palette", "ocean", "--c-real", "-0.4", "--c-imag", "0.6"],
            {"kind": "julia", "palette": "ocean", "c_real": -0.4, "c_imag": 0.6, "seed": None},
        ),
        (["--kind", "mandelbrot", "--palette", "fire"], {"kind": "mandelbrot", "seed": None}),
        (["--kind", "julia", "--seed", "5"], {"kind": "julia", "seed": 5}),
    ],
    ids=["c", "mandelbrot", "seed"],
)
def test_create_options_reach_the_api(cli, capsys, flags, expected):
    sizes = ["--width", "16", "--height", "12", "--iterations", "20"]
    code, out, err = run(["create", "--tasks", "2", *sizes, *flags], capsys)
    assert code == 0, err
    uuids = out.split()
    assert len(uuids) == 2 and err.strip() == "generating 2 task(s)"
    for uuid in uuids:
        record = cli.record(uuid)
        assert (record["width"], record["height"], record["iterations"]) == (16, 12, 20)
        assert {name: record[name] for name in expected} == expected
        assert record["status"] == "queued"
