"""Tokens: clients create and delete, workers deliver, reads public unless made private."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.conftest import png_bytes, sha, task
from faafo.api.app import create_app

CLIENT, WORKER = "client-secret-token", "worker-secret-token"


@pytest.fixture
def secured(settings):
    settings.client_token = SecretStr(CLIENT)
    settings.worker_token = SecretStr(f"old-token,{WORKER}")
    with TestClient(create_app(settings)) as client:
        yield client


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_creating_and_deleting_need_the_client_token(secured):
    assert secured.post("/v1/fractal", json=task()).status_code == 401
    assert secured.post("/v1/fractal", json=task(), headers=bearer("wrong")).status_code == 403
    assert secured.post("/v1/fractal", json=task(), headers=bearer(WORKER)).status_code == 403
    uuid = secured.post("/v1/fractal", json=task(), headers=bearer(CLIENT)).json()["uuid"]
    assert secured.delete(f"/v1/fractal/{uuid}").status_code == 401
    assert secured.delete(f"/v1/fractal/{uuid}", headers=bearer(WORKER)).status_code == 403, (
        "workers cannot delete"
    )
    assert secured.delete(f"/v1/fractal/{uuid}", headers=bearer(CLIENT)).status_code == 204


def test_results_need_the_worker_token(secured):
    uuid = secured.post("/v1/fractal", json=task(), headers=bearer(CLIENT)).json()["uuid"]
    png = png_bytes()
    params = {"checksum": sha(png), "duration": 1, "generated_by": "w"}
    for headers in ({}, bearer(CLIENT)):
        response = secured.put(
            f"/v1/fractal/{uuid}",
            params=params,
            content=png,
            headers={"content-type": "image/png", **headers},
        )
        assert response.status_code in (401, 403), "clients cannot forge results"
    claim = secured.post(
        "/v1/worker/claim", json={"worker": "w", "uuids": [uuid]}, headers=bearer(CLIENT)
    )
    assert claim.status_code == 403
    response = secured.put(
        f"/v1/fractal/{uuid}",
        params=params,
        content=png,
        headers={"content-type": "image/png", **bearer(WORKER)},
    )
    assert response.status_code == 200
    assert (
        secured.put(
            f"/v1/fractal/{uuid}",
            params=params,
            content=png,
            headers={"content-type": "image/png", **bearer("old-token")},
        ).status_code
        == 200
    )


def test_reads_public_by_default_private_on_request(secured, settings):
    assert secured.get("/v1/fractal").status_code == 200
    settings.private_reads = True
    assert secured.get("/v1/fractal").status_code == 401
    assert secured.get("/v1/fractal", headers=bearer(CLIENT)).status_code == 200


def test_tokens_never_logged(secured, caplog):
    caplog.set_level(logging.DEBUG)
    secured.post("/v1/fractal", json=task(), headers=bearer(CLIENT))
    secured.post("/v1/fractal", json=task(), headers=bearer("a-wrong-guess"))
    assert CLIENT not in caplog.text and "a-wrong-guess" not in caplog.text


def test_settings_hide_tokens(settings):
    settings.client_token = SecretStr(CLIENT)
    assert CLIENT not in repr(settings) and CLIENT not in str(settings.model_dump())


def test_credentials_file_roundtrip(tmp_path):
    from faafo.client import credentials

    path = tmp_path / "c.json"
    credentials.remember("http://localhost:8080", "tok", path)
    assert credentials.lookup("http://127.0.0.1:8080/", path) == "tok"
    assert credentials.lookup("http://127.0.0.1:8081", path) is None
    assert oct(path.stat().st_mode & 0o777) == "0o600"
