"""A huge task is split into bands that several workers render, then assembled exactly."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from faafo.engine import FractalSpec, render_png
from support.cluster import Cluster
from support.processes import wait_until


@pytest.fixture
def cluster(tmp_path):
    data = tmp_path / "data"
    cluster = Cluster(
        f"sqlite:///{data / 'faafo.sqlite3'}",
        f"embedded://{data / 'queue.sqlite3'}",
        tmp_path,
        data,
        extra_api_args=["--band-cost", "20000000"],
    )
    yield cluster
    cluster.stop()


def test_banded_task_spreads_over_workers_and_matches_a_whole_render(cluster):
    url = cluster.start_api()
    for name in ("w1", "w2", "w3"):
        cluster.start_worker(name, "--render-threads", "1")
    task = {
        "width": 700,
        "height": 500,
        "iterations": 300,
        "xa": -1.6,
        "xb": 1.6,
        "ya": -1.1,
        "yb": 1.1,
        "seed": 42,
        "palette": "faafo",
    }
    with cluster.client() as client:
        record = client.create([task])[0]
        uuid = record["uuid"]
        wait_until(
            lambda: client.get(uuid)["status"] in ("done", "failed"),
            120,
            message="banded task finished",
        )
        record = client.get(uuid)
    assert record["status"] == "done", cluster.logs()
    png = httpx.get(f"{url}/fractal/{uuid}").content
    assert hashlib.sha256(png).hexdigest() == record["checksum"]
    whole = render_png(FractalSpec(**{k: v for k, v in task.items()}))
    assert record["c_real"] == whole.c.real and record["c_imag"] == whole.c.imag
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(png)).tobytes() == Image.open(BytesIO(whole.png)).tobytes()
    logs = "\n".join(w.tail(400) for w in cluster.workers)
    banders = {w.name for w in cluster.workers if "delivered band" in w.tail(400)}
    assert len(banders) >= 2, f"bands rendered by {banders}\n{logs}"
    assert httpx.get(f"{url}/fractal/{uuid}/thumbnail").status_code == 200


def test_kind_and_palette_flow_through_every_service(cluster):
    url = cluster.start_api()
    cluster.start_worker("w1")
    task = {
        "width": 160,
        "height": 120,
        "iterations": 200,
        "xa": -2.2,
        "xb": 1.0,
        "ya": -1.2,
        "yb": 1.2,
        "kind": "mandelbrot",
        "palette": "ocean",
    }
    with cluster.client() as client:
        uuid = client.create([task])[0]["uuid"]
        wait_until(lambda: client.get(uuid)["status"] == "done", 60, message="done")
        record = client.get(uuid)
    assert (record["kind"], record["palette"], record["c_real"]) == ("mandelbrot", "ocean", None)
    from io import BytesIO

    from PIL import Image

    png = httpx.get(f"{url}/fractal/{uuid}").content
    expected = render_png(FractalSpec(**task)).png
    assert Image.open(BytesIO(png)).tobytes() == Image.open(BytesIO(expected)).tobytes()
