"""Database errors at the edge: conflicts are 409, overload and outages 503, never a 500."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


def raising(app, error: Exception) -> TestClient:
    def boom() -> None:
        raise error

    app.add_api_route("/boom", boom)
    return TestClient(app)


def test_an_integrity_error_is_a_409_conflict(app):
    error = IntegrityError("INSERT INTO fractals ...", {}, Exception("duplicate key"))
    with raising(app, error) as client:
        response = client.get("/boom")
    assert response.status_code == 409
    assert response.json()["message"].startswith("the request conflicts with a concurrent change")


def test_a_pool_timeout_is_503_with_retry_after(app):
    with raising(app, PoolTimeout("QueuePool limit of size 1 overflow 0 reached")) as client:
        response = client.get("/boom")
    assert response.status_code == 503 and response.headers["retry-after"] == "2"


def test_a_database_outage_is_still_503(app):
    with raising(app, OperationalError("SELECT 1", {}, Exception("gone"))) as client:
        response = client.get("/boom")
    assert response.status_code == 503
    assert response.json()["message"] == "database unavailable, try again shortly"
