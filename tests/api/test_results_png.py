"""Delivered PNGs are checked before they are stored: complete, and the size of the task."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from api.conftest import png_bytes, sha, task


def deliver(client, uuid, png):
    query = {"checksum": sha(png), "duration": 0.5, "generated_by": "tester"}
    return client.put(
        f"/v1/fractal/{uuid}", params=query, content=png, headers={"content-type": "image/png"}
    )


def multipart(client, uuid, png):
    meta = [{"uuid": uuid, "checksum": sha(png), "duration": 0.1, "generated_by": "w"}]
    files = [("meta", (None, json.dumps(meta), "application/json"))]
    files.append((uuid, (f"{uuid}.png", png, "image/png")))
    return client.post("/v1/worker/results", files=files)


def created(client, **overrides) -> str:
    return client.post("/v1/fractal", json=task(**overrides)).json()["uuid"]


def status(client, uuid) -> str:
    return client.get(f"/v1/fractal/{uuid}").json()["status"]


def test_an_image_of_another_size_is_422_and_not_stored(client):
    uuid = created(client, width=8, height=6)
    response = deliver(client, uuid, png_bytes(100, 100))
    assert response.status_code == 422
    assert response.json()["message"] == f"{uuid}: result is 100x100 pixels; the task is 8x6"
    assert status(client, uuid) == "queued"
    assert deliver(client, uuid, png_bytes(8, 6)).json()["result"] == "stored"


def test_a_swapped_width_and_height_is_refused(client):
    uuid = created(client, width=8, height=6)
    assert deliver(client, uuid, png_bytes(6, 8)).status_code == 422


def noisy_png(width: int, height: int) -> bytes:
    """A PNG of random pixels: kilobytes, where a plain colour compresses to 95 bytes."""
    import io
    import random

    from PIL import Image

    pixels = random.Random(width * height).randbytes(width * height * 3)
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("keep", [0.999, 0.5, 0.1])
def test_a_truncated_png_with_the_checksum_of_its_bytes_is_422(client, keep):
    uuid = created(client)
    whole = noisy_png(32, 24)
    response = deliver(client, uuid, whole[: int(len(whole) * keep)])
    assert response.status_code == 422
    assert "truncated PNG" in response.json()["message"]
    assert status(client, uuid) == "queued"


def test_a_png_without_an_ihdr_first_is_refused(client):
    uuid = created(client)
    png = png_bytes()
    no_header = png[:8] + png[33:]  # the IHDR chunk removed
    response = deliver(client, uuid, no_header)
    assert response.status_code == 422 and "no IHDR" in response.json()["message"]


def test_a_png_whose_header_was_altered_is_refused(client):
    uuid = created(client, width=8, height=6)
    png = png_bytes(8, 6)
    forged = png[:24] + b"\x10" + png[25:]  # bit depth 16, the CRC left as it was
    response = deliver(client, uuid, forged)
    assert response.status_code == 422 and "bad IHDR checksum" in response.json()["message"]


def test_multipart_results_are_checked_the_same_way(client):
    uuid = created(client, width=8, height=6)
    wrong = multipart(client, uuid, png_bytes(100, 100))
    assert wrong.status_code == 422 and "the task is 8x6" in wrong.json()["message"]
    truncated = multipart(client, uuid, png_bytes(8, 6)[:-12])
    assert truncated.status_code == 422
    assert multipart(client, uuid, png_bytes(8, 6)).json() == {uuid: "stored"}


def test_the_original_json_upload_is_checked_too(client):
    import base64

    uuid = created(client, width=8, height=6)
    png = png_bytes(100, 100)
    body = {"image": base64.b64encode(png).decode(), "checksum": sha(png), "duration": 1}
    response = client.put(f"/v1/fractal/{uuid}", json=body)
    assert response.status_code == 422 and "100x100" in response.json()["message"]


def test_an_unknown_uuid_still_answers_404_not_422(client):
    import uuid as uuidlib

    unknown = str(uuidlib.uuid4())
    assert deliver(client, unknown, png_bytes()).status_code == 404


def test_a_complete_png_not_made_by_pillow_is_accepted(client):
    """Only the structure is checked; any valid encoder passes."""
    uuid = created(client, width=2, height=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"\x00" + b"\xff\x00\x00" + b"\x00\xff\x00"
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    assert deliver(client, uuid, png).json()["result"] == "stored"


def banded(client, services) -> tuple[str, list[dict]]:
    services.settings.band_cost = 32 * 8 * 64  # 8 rows of a 32-wide, 64-iteration task
    uuid = created(client, width=32, height=24)
    record = client.get(f"/v1/fractal/{uuid}").json()
    assert record["status"] == "queued"
    with services.database.reading() as session:
        from faafo.store import bands

        rows = [{"idx": b.idx, "y0": b.y0, "y1": b.y1} for b in bands.of(session, uuid)]
    assert len(rows) == 3
    return uuid, rows


def put_band(client, uuid, band, png):
    query = {"checksum": sha(png), "duration": 0.1, "generated_by": "w"}
    return client.put(
        f"/v1/worker/bands/{uuid}/{band}",
        params=query,
        content=png,
        headers={"content-type": "image/png"},
    )


def test_a_band_must_have_the_bands_size(client, services):
    uuid, rows = banded(client, services)
    band = rows[1]
    height = band["y1"] - band["y0"]
    whole = put_band(client, uuid, 1, png_bytes(32, 24))
    assert whole.status_code == 422
    assert whole.json()["message"] == f"{uuid}: result is 32x24 pixels; the task is 32x{height}"
    assert put_band(client, uuid, 1, png_bytes(32, height)[:-5]).status_code == 422
    stored = put_band(client, uuid, 1, png_bytes(32, height))
    assert stored.status_code == 200 and stored.json()["result"] == "stored"
    assert put_band(client, uuid, 7, png_bytes(32, height)).status_code == 404
