"""Create's validation: strict JSON types, the Julia constant, sizes, and bodies refused early."""

from __future__ import annotations

import json
import uuid as uuidlib

import pytest

from api.conftest import png_bytes, sha, task
from faafo.engine.spec import MAX_SIDE, FractalSpec


def post_raw(client, body: str, path: str = "/v1/fractal"):
    return client.post(path, content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"width": True}, "width"),
        ({"height": False}, "height"),
        ({"iterations": True}, "iterations"),
        ({"xa": True}, "xa"),
        ({"c_real": True, "c_imag": 0.1}, "c_real"),
        ({"seed": True}, "seed"),
        ({"width": "8"}, "width"),
        ({"xb": "2.5"}, "xb"),
        ({"width": 8.0}, "width"),
        ({"kind": 1}, "kind"),
        ({"batch": 7}, "batch"),
    ],
)
def test_booleans_strings_and_floats_do_not_pass_as_numbers(client, overrides, field):
    response = client.post("/v1/fractal", json=task(**overrides))
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}:")
    assert client.get("/v1/fractal").json()["num_results"] == 0


def test_integers_still_pass_for_coordinates(client):
    response = client.post("/v1/fractal", json=task(xa=-2, xb=2, ya=-1, yb=1))
    assert response.status_code == 201, response.text
    assert response.json()["xa"] == -2.0


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"seed": 7, "c_real": 0.3, "c_imag": 0.1}, "either c_real/c_imag or seed, not both"),
        ({"kind": "mandelbrot", "c_real": 0.3, "c_imag": 0.1}, "apply to kind julia only"),
        ({"kind": "mandelbrot", "seed": 3}, "apply to kind julia only"),
    ],
)
def test_the_constant_is_refused_where_faafo_render_refuses_it(client, overrides, fragment):
    response = client.post("/v1/fractal", json=task(**overrides))
    assert response.status_code == 422
    assert fragment in response.json()["message"]


def test_julia_with_c_or_seed_and_plain_mandelbrot_are_accepted(client):
    for overrides in ({"c_real": 0.3, "c_imag": 0.1}, {"seed": 9}, {"kind": "mandelbrot"}):
        assert client.post("/v1/fractal", json=task(**overrides)).status_code == 201


def test_a_side_above_max_side_is_422_naming_the_limit(client, services):
    services.settings.max_pixels = 10**8
    wide = client.post("/v1/fractal", json=task(width=10**8, height=1))
    assert wide.status_code == 422
    assert wide.json()["message"] == "width 100000000 exceeds the largest side, 65536 pixels"
    tall = client.post("/v1/fractal", json=[task(), task(width=1, height=65537)])
    assert tall.status_code == 422
    assert tall.json()["message"] == "task 1: height 65537 exceeds the largest side, 65536 pixels"
    services.settings.max_side = 100
    assert (
        "largest side, 100 pixels"
        in client.post("/v1/fractal", json=task(width=101)).json()["message"]
    )


def test_the_default_max_side_still_allows_10000_by_10000(tmp_path):
    from faafo.config import ApiSettings, load_settings

    settings = load_settings(ApiSettings, {"data_dir": tmp_path})
    assert settings.max_side == 65536 and settings.max_pixels >= 10000 * 10000
    assert settings.max_side <= MAX_SIDE


def test_max_side_setting_cannot_pass_the_engines_limit(tmp_path):
    from pydantic import ValidationError

    from faafo.config import ApiSettings, load_settings

    assert load_settings(ApiSettings, {"data_dir": tmp_path, "max_side": MAX_SIDE}).max_side
    with pytest.raises(ValidationError):
        load_settings(ApiSettings, {"data_dir": tmp_path, "max_side": MAX_SIDE + 1})


def test_the_engine_refuses_a_side_beyond_max_side():
    with pytest.raises(ValueError, match=r"^width must be in 1\.\.1048576, got 3000000000$"):
        FractalSpec(3_000_000_000, 1, 10, -1.0, 1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="height"):
        FractalSpec(1, MAX_SIDE + 1, 10, -1.0, 1.0, -1.0, 1.0)
    assert FractalSpec(MAX_SIDE, 1, 10, -1.0, 1.0, -1.0, 1.0).width == MAX_SIDE


def test_too_many_tasks_are_refused_before_any_is_validated(client):
    # 51 tasks (the limit is 50), the first of them invalid: the count decides.
    body = [task(width=0)] + [task() for _ in range(50)]
    response = client.post("/v1/fractal", json=body)
    assert response.status_code == 422
    assert response.json()["message"] == "at least 51 tasks in one request; the limit is 50"


def test_the_count_stops_parsing_at_the_first_item_over_the_limit(client):
    # What follows item 51 is never parsed: it would otherwise be a 400 (bad JSON).
    body = "[" + ",".join(json.dumps(task()) for _ in range(51)) + ", this is not JSON"
    response = post_raw(client, body)
    assert response.status_code == 422 and "the limit is 50" in response.json()["message"]
    exactly = "[" + ",".join(json.dumps(task()) for _ in range(50)) + "]"
    assert post_raw(client, exactly).status_code == 201


@pytest.mark.parametrize(
    "body",
    ["[", "[]]", "[1,]", "[,1]", "[1 2]", '[{"width": 1}] x', " [ ] extra", "[NaN]"],
)
def test_malformed_arrays_are_400(client, body):
    response = post_raw(client, body)
    assert response.status_code == 400, response.text
    assert response.json() == {"code": 400, "message": "request body is not valid JSON"}


def test_an_empty_array_is_still_422(client):
    response = post_raw(client, " [ ] ")
    assert response.status_code == 422 and response.json()["message"] == "no tasks given"


DEEP = "[" * 100_000


def test_deeply_nested_json_is_400_on_create(client):
    for body in (DEEP, "[" + DEEP, '{"width": ' + DEEP):
        response = post_raw(client, body)
        assert response.status_code == 400
        assert response.json()["message"] == "request body is not valid JSON: it nests too deeply"


def test_deeply_nested_json_is_400_on_the_original_result_put(client):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    response = client.put(
        f"/v1/fractal/{uuid}", content=DEEP, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "nests too deeply" in response.json()["message"]
    assert client.get(f"/v1/fractal/{uuid}").json()["status"] == "queued"


def test_deeply_nested_meta_is_400_on_worker_results(client):
    uuid = client.post("/v1/fractal", json=task()).json()["uuid"]
    png = png_bytes()
    files = [("meta", (None, DEEP, "application/json")), (uuid, ("a.png", png, "image/png"))]
    response = client.post("/v1/worker/results", files=files)
    assert response.status_code == 400
    assert response.json()["message"] == "meta is not valid JSON: it nests too deeply"
    bad = client.post("/v1/worker/results", files=[("meta", (None, "{oops", "text/plain"))])
    assert bad.status_code == 400 and bad.json()["message"] == "meta is not valid JSON"
    meta = json.dumps([{"uuid": uuid, "checksum": sha(png), "duration": 1, "generated_by": "w"}])
    files[0] = ("meta", (None, meta, "application/json"))
    assert client.post("/v1/worker/results", files=files).json() == {uuid: "stored"}


def test_upper_case_uuids_reach_the_same_fractal_on_every_route(client):
    chosen = "ABCDEF00-1234-4ABC-8DEF-0123456789AB"
    lower = chosen.lower()
    created = client.post("/v1/fractal", json=task(uuid=chosen))
    assert created.status_code == 201 and created.json()["uuid"] == lower
    assert client.get(f"/v1/fractal/{chosen}").json()["uuid"] == lower
    assert client.get(f"/v1/fractal/{lower.replace('-', '')}").json()["uuid"] == lower
    assert client.get(f"/fractal/{chosen}").json()["message"].endswith("no image yet")
    png = png_bytes()
    query = {"checksum": sha(png), "duration": 1, "generated_by": "w"}
    put = client.put(
        f"/v1/fractal/{chosen}", params=query, content=png, headers={"content-type": "image/png"}
    )
    assert put.status_code == 200 and put.json() == {"uuid": lower, "result": "stored"}
    assert client.get(f"/fractal/{chosen}").content == png
    assert client.head(f"/fractal/{chosen}").status_code == 200
    assert client.get(f"/fractal/{chosen}/thumbnail").status_code == 200
    assert client.delete(f"/v1/fractal/{chosen}").status_code == 204
    assert client.get(f"/v1/fractal/{lower}").status_code == 404


def test_a_path_that_is_no_uuid_is_still_a_plain_404(client):
    response = client.get("/v1/fractal/not-a-uuid")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "message": "fractal not-a-uuid not found"}


def test_path_uuid_dependency_normalises():
    from faafo.api.deps import fractal_uuid

    value = uuidlib.uuid4()
    assert fractal_uuid(str(value).upper()) == str(value)
    assert fractal_uuid("{" + str(value) + "}") == str(value)
    assert fractal_uuid("x") == "x"


def test_a_long_path_that_is_no_uuid_is_404_on_every_route(client):
    long = "0" * 64
    png = png_bytes()
    query = {"checksum": sha(png), "duration": 1, "generated_by": "w"}
    responses = [
        client.get(f"/v1/fractal/{long}"),
        client.delete(f"/v1/fractal/{long}"),
        client.put(
            f"/v1/fractal/{long}", params=query, content=png, headers={"content-type": "image/png"}
        ),
        client.get(f"/fractal/{long}"),
        client.head(f"/fractal/{long}/thumbnail"),
    ]
    assert [r.status_code for r in responses] == [404] * 5
