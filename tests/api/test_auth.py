"""Tokens: clients create and delete, workers deliver, reads public unless made private."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.conftest import png_bytes, sha, task
from faafo.api import auth
from faafo.api.app import create_app
from faafo.config import ConfigurationError

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


# -- private reads: every reader route, pages included, and the reading session --------

# Routes that stay public with private reads: probes for load balancers, and the
# API's description (no data). Everything else that answers GET must refuse.
PUBLIC_GETS = {"/healthz", "/readyz", "/docs", "/openapi.json"}
PAGES = {"/", "/index", "/index/{page}", "/gallery/cards", "/fractal/{uuid}/view"}


@pytest.fixture
def private(settings):
    settings.client_token = SecretStr(CLIENT)
    settings.worker_token = SecretStr(WORKER)
    settings.private_reads = True
    with TestClient(create_app(settings)) as client:
        yield client


def done_fractal(client) -> str:
    """A finished fractal (so its image and thumbnail answer 200), created through the API."""
    created = client.post("/v1/fractal", json=task(batch="b-1"), headers=bearer(CLIENT))
    uuid = created.json()["uuid"]
    png = png_bytes()
    delivered = client.put(
        f"/v1/fractal/{uuid}",
        params={"checksum": sha(png), "duration": 1, "generated_by": "w-one"},
        content=png,
        headers={"content-type": "image/png", **bearer(WORKER)},
    )
    assert delivered.status_code == 200, delivered.text
    return uuid


def walk(routes):  # type: ignore[no-untyped-def]
    """The app's routes, through included routers (newer FastAPI nests them)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from walk(inner.routes)
        else:
            yield route


def get_routes(app) -> list[str]:
    """Every GET path of the app (static files aside), as a template."""
    paths = []
    for route in walk(app.routes):
        if "GET" in (getattr(route, "methods", None) or ()) and route.path not in PUBLIC_GETS:
            paths.append(route.path)
    return sorted(set(paths))


def filled(path: str, uuid: str) -> str:
    return (
        path.replace("{uuid}", uuid).replace("{page}", "1").replace("{batch}", "b-1")
        .replace("{band}", "0")
    )


def test_every_get_route_refuses_without_a_token_when_reads_are_private(private):
    uuid = done_fractal(private)
    routes = get_routes(private.app)
    assert {"/metrics", "/v1/stats", "/fractal/{uuid}/thumbnail"} | PAGES <= set(routes)
    for path in routes:
        url = filled(path, uuid)
        answer = private.get(url)
        assert answer.status_code == 401, f"{url}: {answer.status_code}"
        if path in PAGES:
            assert answer.headers["content-type"].startswith("text/html"), url
            assert "This gallery is private" in answer.text, url
            assert uuid not in answer.text and "data-count" not in answer.text, "nothing leaks"
        else:
            assert answer.json()["code"] == 401, url
        worker_route = path.startswith("/v1/worker/")
        token = WORKER if worker_route else CLIENT
        allowed = private.get(url, headers=bearer(token))
        # A worker route may find no such band (404): what matters is that it let the token in.
        assert allowed.status_code == (404 if worker_route else 200), f"{url}: {allowed.text}"
        assert private.get(url, headers=bearer("a-wrong-guess")).status_code == 403, url
    for path in PUBLIC_GETS:
        assert private.get(path).status_code == 200, path


def test_a_reading_session_cookie_reads_everything_but_changes_nothing(private):
    uuid = done_fractal(private)
    assert private.post("/v1/session").status_code == 401
    refused = private.post("/v1/session", headers=bearer("a-wrong-guess"))
    assert refused.status_code == 403 and "set-cookie" not in refused.headers
    started = private.post("/v1/session", headers=bearer(CLIENT))
    assert started.status_code == 204
    cookie = started.headers["set-cookie"]
    assert cookie.startswith(f"{auth.READER_COOKIE}=") and CLIENT not in cookie
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=43200"):
        assert attribute.lower() in cookie.lower(), attribute
    # The browser now sends the cookie alone (no header): pages and images are readable.
    for path in PAGES | {"/fractal/{uuid}/thumbnail", "/fractal/{uuid}", "/v1/stats", "/metrics"}:
        url = filled(path, uuid)
        assert private.get(url).status_code == 200, url
    # It grants reading only: a cross-site form or script can create and delete nothing.
    assert private.post("/v1/fractal", json=task()).status_code == 401
    assert private.delete(f"/v1/fractal/{uuid}").status_code == 401
    assert private.delete("/v1/session").status_code == 204
    assert private.get("/").status_code == 401, "the session ended"


def test_reading_sessions_expire_and_end_with_their_token(private, settings):
    uuid = done_fractal(private)
    url = f"/fractal/{uuid}/thumbnail"
    day_ago = time.time() - 24 * 3600
    private.cookies.set(auth.READER_COOKIE, auth.reader_cookie(CLIENT, now=day_ago))
    assert private.get(url).status_code == 401, "an expired session"
    value = auth.reader_cookie(CLIENT)
    expires, _, mac = value.partition(".")
    later = str(int(expires) + 3600)
    private.cookies.set(auth.READER_COOKIE, f"{later}.{mac}")
    assert private.get(url).status_code == 401, "a session whose expiry was pushed out"
    private.cookies.set(auth.READER_COOKIE, auth.reader_cookie("not-the-token"))
    assert private.get(url).status_code == 401, "a session made from another token"
    private.cookies.set(auth.READER_COOKIE, value)
    assert private.get(url).status_code == 200
    settings.client_token = SecretStr("a-new-token")  # the operator withdrew the old token
    assert private.get(url).status_code == 401


def test_images_are_not_left_in_shared_caches_when_reads_are_private(private, settings):
    uuid = done_fractal(private)
    for path in (f"/fractal/{uuid}", f"/fractal/{uuid}/thumbnail"):
        answer = private.get(path, headers=bearer(CLIENT))
        assert answer.headers["cache-control"].startswith("private"), path
        settings.private_reads = False
        assert private.get(path).headers["cache-control"].startswith("public"), path
        settings.private_reads = True


# -- start-up: no endpoint left open by accident -----------------------------------------


@pytest.mark.parametrize(
    "tokens",
    [
        {"client_token": CLIENT},
        {"worker_token": WORKER},
        {"client_token": "", "worker_token": "", "private_reads": True},
    ],
)
def test_the_app_refuses_token_settings_that_leave_endpoints_open(settings, tokens):
    for name, value in tokens.items():
        setattr(settings, name, SecretStr(value) if name.endswith("token") else value)
    with pytest.raises(ConfigurationError):
        create_app(settings)


def run_api(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``faafo-api`` as a real process (it exits before serving, on a refusal or ``migrate``)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAAFO_")}
    return subprocess.run(
        [sys.executable, "-m", "faafo.api.main", "--data-dir", str(tmp_path / "data"), *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_faafo_api_with_only_a_client_token_refuses_to_start(tmp_path):
    """It used to start, and an unauthenticated POST /v1/worker/failures then failed tasks."""
    done = run_api(tmp_path, env={"FAAFO_CLIENT_TOKEN": CLIENT})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faafo-api: error: "), done.stderr
    assert "no worker token" in lines[0] and CLIENT not in done.stderr
    assert "Traceback" not in done.stderr


def test_tokens_given_as_flags_are_warned_about_without_their_value(tmp_path):
    flags = run_api(tmp_path, "--client-token", CLIENT, "--worker-token", WORKER, "migrate")
    assert flags.returncode == 0, flags.stderr
    for flag in ("--client-token", "--worker-token"):
        assert f"{flag} was given on the command line" in flags.stderr
    assert CLIENT not in flags.stderr + flags.stdout and WORKER not in flags.stderr + flags.stdout
    quiet = run_api(
        tmp_path, "migrate", env={"FAAFO_CLIENT_TOKEN": CLIENT, "FAAFO_WORKER_TOKEN": WORKER}
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "command line" not in quiet.stderr, "tokens from the environment are fine"
