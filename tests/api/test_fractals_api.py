"""The v1 REST API: the original's paths, fields and envelope, validation and errors."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from api.conftest import png_bytes, sha, task


def create(client, **overrides):
    response = client.post("/v1/fractal", json=task(**overrides))
    assert response.status_code == 201, response.text
    return response.json()


def deliver(client, uuid, png, **params):
    query = {"checksum": sha(png), "duration": 0.5, "generated_by": "tester", **params}
    return client.put(
        f"/v1/fractal/{uuid}", params=query, content=png, headers={"content-type": "image/png"}
    )


def test_create_returns_record_location_and_queued_state(client):
    chosen = str(uuidlib.uuid4())
    response = client.post("/v1/fractal", json=task(uuid=chosen))
    assert response.status_code == 201
    body = response.json()
    assert body["uuid"] == chosen
    assert response.headers["location"].endswith(f"/v1/fractal/{chosen}")
    for field in (
        "width",
        "height",
        "iterations",
        "xa",
        "xb",
        "ya",
        "yb",
        "duration",
        "size",
        "checksum",
        "generated_by",
    ):
        assert field in body
    assert body["status"] == "queued"
    assert body["created_at"] and body["started_at"] is None
    assert body["seed"] is not None and body["seed"] < 2**53, "c must be reproducible"


def test_create_without_uuid_gets_one(client):
    body = create(client)
    assert uuidlib.UUID(body["uuid"])


def test_batch_create_is_one_request(client):
    response = client.post("/v1/fractal", json=[task() for _ in range(20)])
    assert response.status_code == 201
    body = response.json()
    assert body["num_results"] == 20 and len({o["uuid"] for o in body["objects"]}) == 20


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"width": 0}, "width"),
        ({"height": -3}, "height"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 5001}, "iterations 5001 exceeds"),
        ({"width": 2000, "height": 2000}, "pixels"),
        ({"xa": 1.0, "xb": 1.0}, "xa and xb must differ"),
        ({"ya": 0.5, "yb": 0.5}, "ya and yb must differ"),
        ({"xa": "left"}, "xa"),
        ({"xa": 1e300}, "xa"),
        ({"uuid": "not-a-uuid"}, "well-formed UUID"),
        ({"kind": "newton"}, "kind must be one of"),
        ({"palette": "nope"}, "palette must be one of"),
        ({"c_real": 0.3}, "both c_real and c_imag"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_tasks_are_422_with_a_clear_message(client, overrides, fragment):
    response = client.post("/v1/fractal", json=task(**overrides))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == 422
    assert fragment in body["message"]


def test_missing_field_names_it(client):
    body = task()
    del body["yb"]
    response = client.post("/v1/fractal", json=body)
    assert response.status_code == 422 and "yb" in response.json()["message"]


def test_nan_and_infinity_are_refused(client):
    raw = '{"width": 8, "height": 8, "iterations": 8, "xa": NaN, "xb": 1, "ya": -1, "yb": Infinity}'
    response = client.post("/v1/fractal", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400


def test_content_type_and_json_errors(client):
    response = client.post("/v1/fractal", content="width=3", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    response = client.post(
        "/v1/fractal", content="{oops", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "request body is not valid JSON"


def test_too_many_tasks_in_one_request(client):
    response = client.post("/v1/fractal", json=[task() for _ in range(51)])
    assert response.status_code == 422 and "limit is 50" in response.json()["message"]


def test_duplicate_uuid_is_409_and_changes_nothing(client):
    body = create(client)
    response = client.post("/v1/fractal", json=task(uuid=body["uuid"], width=99))
    assert response.status_code == 409
    assert client.get(f"/v1/fractal/{body['uuid']}").json()["width"] == 32
    twice = str(uuidlib.uuid4())
    response = client.post("/v1/fractal", json=[task(uuid=twice), task(uuid=twice)])
    assert response.status_code == 409
    assert client.get(f"/v1/fractal/{twice}").status_code == 404


def test_unknown_uuid_is_404_json(client):
    unknown = str(uuidlib.uuid4())
    for method, path in (
        ("GET", f"/v1/fractal/{unknown}"),
        ("DELETE", f"/v1/fractal/{unknown}"),
        ("GET", f"/fractal/{unknown}"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json() == {"code": 404, "message": f"fractal {unknown} not found"}


def test_list_envelope_pagination_and_link_header(client):
    uuids = [create(client)["uuid"] for _ in range(23)]
    first = client.get("/v1/fractal")
    body = first.json()
    assert set(body) == {"num_results", "objects", "page", "total_pages"}
    assert body["num_results"] == 23 and body["total_pages"] == 3 and len(body["objects"]) == 10
    assert 'rel="next"' in first.headers["link"] and 'rel="last"' in first.headers["link"]
    assert "image" not in body["objects"][0]
    seen = []
    for page in (1, 2, 3):
        seen += [
            o["uuid"] for o in client.get("/v1/fractal", params={"page": page}).json()["objects"]
        ]
    assert sorted(seen) == sorted(uuids), "pages must not overlap or skip"
    big = client.get("/v1/fractal", params={"results_per_page": 100}).json()
    assert len(big["objects"]) == 23
    assert client.get("/v1/fractal", params={"results_per_page": 101}).status_code == 422
    assert client.get("/v1/fractal", params={"page": 0}).status_code == 422


def test_delete(client):
    uuid = create(client)["uuid"]
    assert client.delete(f"/v1/fractal/{uuid}").status_code == 204
    assert client.get(f"/v1/fractal/{uuid}").status_code == 404


def test_result_upload_raw_png_checksum_verified_and_served(client):
    uuid = create(client)["uuid"]
    png = png_bytes()
    assert client.get(f"/fractal/{uuid}").status_code == 404, "pending: 404, not a crash"
    bad = client.put(
        f"/v1/fractal/{uuid}",
        params={"checksum": "0" * 64, "duration": 1, "generated_by": "w"},
        content=png,
        headers={"content-type": "image/png"},
    )
    assert bad.status_code == 422 and "checksum mismatch" in bad.json()["message"]
    assert client.get(f"/v1/fractal/{uuid}").json()["status"] == "queued"
    response = deliver(client, uuid, png, c_real=-0.8, c_imag=0.156)
    assert response.status_code == 200 and response.json()["result"] == "stored"
    record = client.get(f"/v1/fractal/{uuid}").json()
    assert record["status"] == "done" and record["size"] == len(png)
    assert record["checksum"] == sha(png) and record["generated_by"] == "tester"
    assert record["c_real"] == -0.8 and record["finished_at"]
    image = client.get(f"/fractal/{uuid}")
    assert image.status_code == 200 and image.content == png
    assert image.headers["content-type"] == "image/png"
    assert image.headers["etag"] == f'"{sha(png)}"' and "max-age" in image.headers["cache-control"]
    again = client.get(f"/fractal/{uuid}", headers={"if-none-match": image.headers["etag"]})
    assert again.status_code == 304
    thumb = client.get(f"/fractal/{uuid}/thumbnail")
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")


def test_a_result_with_half_a_constant_is_422_and_stores_nothing(client):
    """c_real without c_imag (or the reverse) could not re-render the image, and every
    reader of the record (``faafo show``) expects both or neither."""
    uuid = create(client)["uuid"]
    png = png_bytes()
    for half in ({"c_real": 0.3}, {"c_imag": -0.2}):
        refused = deliver(client, uuid, png, **half)
        assert refused.status_code == 422, refused.text
        assert "give both c_real and c_imag, or neither" in refused.json()["message"]
        assert client.get(f"/v1/fractal/{uuid}").json()["status"] == "queued"
    assert deliver(client, uuid, png, c_real=0.3, c_imag=-0.2).json()["result"] == "stored"


def test_identical_images_are_allowed_checksums_not_unique(client):
    png = png_bytes()
    first, second = create(client)["uuid"], create(client)["uuid"]
    assert deliver(client, first, png).json()["result"] == "stored"
    assert deliver(client, second, png).json()["result"] == "stored"


def test_second_delivery_changes_nothing(client):
    uuid = create(client)["uuid"]
    png, other = png_bytes(), png_bytes(colour=(200, 0, 0))
    deliver(client, uuid, png)
    assert deliver(client, uuid, other).json()["result"] == "duplicate"
    assert client.get(f"/fractal/{uuid}").content == png


def test_not_a_png_is_refused(client):
    uuid = create(client)["uuid"]
    response = deliver(client, uuid, b"GIF89a not a png")
    assert response.status_code == 422


def test_original_json_result_upload_is_accepted(client):
    import base64

    uuid = create(client)["uuid"]
    png = png_bytes()
    body = {
        "duration": 2.5,
        "image": base64.b64encode(png).decode(),
        "checksum": sha(png),
        "size": len(png),
        "generated_by": "old-worker",
    }
    assert client.put(f"/v1/fractal/{uuid}", json=body).status_code == 200
    assert client.get(f"/fractal/{uuid}").content == png


def test_batch_progress(client):
    batch = str(uuidlib.uuid4())
    client.post("/v1/fractal", json=[task(batch=batch) for _ in range(3)])
    status = client.get(f"/v1/batch/{batch}").json()
    assert status == {"batch": batch, "total": 3, "counts": {"queued": 3}, "finished": False}
    assert client.get(f"/v1/batch/{uuidlib.uuid4()}").status_code == 404


def test_openapi_docs_health(client):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/v1/fractal" in schema["paths"]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


def test_a_retried_create_with_its_idempotency_key_gets_the_original_answer(client):
    """A retried POST (lost answer, load balancer retry) must not create twice or fail."""
    chosen = str(uuidlib.uuid4())
    key = {"Idempotency-Key": str(uuidlib.uuid4())}
    first = client.post("/v1/fractal", json=[task(uuid=chosen, batch="b1")], headers=key)
    again = client.post("/v1/fractal", json=[task(uuid=chosen, batch="b1")], headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["objects"][0]["seed"] == first.json()["objects"][0]["seed"]
    assert client.get("/v1/fractal").json()["num_results"] == 1


def test_server_chosen_uuids_come_back_on_a_retry(client):
    key = {"Idempotency-Key": "retry-me"}
    body = [task(), task(kind="mandelbrot")]
    first = client.post("/v1/fractal", json=body, headers=key).json()["objects"]
    again = client.post("/v1/fractal", json=body, headers=key).json()["objects"]
    assert [o["uuid"] for o in again] == [o["uuid"] for o in first]
    assert client.get("/v1/fractal").json()["num_results"] == 2
    single = client.post("/v1/fractal", json=task(), headers={"Idempotency-Key": "one"})
    replay = client.post("/v1/fractal", json=task(), headers={"Idempotency-Key": "one"})
    assert replay.status_code == 201 and replay.json()["uuid"] == single.json()["uuid"]
    assert replay.headers["location"] == single.headers["location"]


def test_an_existing_uuid_without_a_matching_key_is_409(client):
    chosen = str(uuidlib.uuid4())
    key = {"Idempotency-Key": str(uuidlib.uuid4())}
    assert client.post("/v1/fractal", json=task(uuid=chosen), headers=key).status_code == 201
    same_body_no_key = client.post("/v1/fractal", json=task(uuid=chosen))
    assert same_body_no_key.status_code == 409
    assert chosen in same_body_no_key.json()["message"]
    other_key = client.post(
        "/v1/fractal", json=task(uuid=chosen), headers={"Idempotency-Key": "another"}
    )
    assert other_key.status_code == 409


def test_an_idempotency_key_reused_for_another_body_is_422(client):
    key = {"Idempotency-Key": "k1"}
    assert client.post("/v1/fractal", json=task(width=8), headers=key).status_code == 201
    response = client.post("/v1/fractal", json=task(width=9), headers=key)
    assert response.status_code == 422
    assert "Idempotency-Key was already used" in response.json()["message"]
    assert client.get("/v1/fractal").json()["num_results"] == 1


def test_a_retry_after_its_tasks_were_deleted_is_409(client):
    key = {"Idempotency-Key": "k2"}
    uuid = client.post("/v1/fractal", json=task(), headers=key).json()["uuid"]
    assert client.delete(f"/v1/fractal/{uuid}").status_code == 204
    response = client.post("/v1/fractal", json=task(), headers=key)
    assert response.status_code == 409 and "deleted since" in response.json()["message"]
