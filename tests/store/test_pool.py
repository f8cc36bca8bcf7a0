"""The connection pool: as large as the request threads on every back end; when it runs
dry anyway the API answers 503 with Retry-After, never a 500."""

from __future__ import annotations

import threading
import uuid as uuidlib

import anyio
import pytest
from fastapi.testclient import TestClient

from faafo.api.app import create_app
from faafo.config import ApiSettings, load_settings
from faafo.store.database import connect


@pytest.fixture(autouse=True)
def _servers_marker(request):
    if "database_url" in request.fixturenames and "sqlite" not in request.node.name:
        request.node.add_marker(pytest.mark.servers)


def request_threads() -> int:
    """The worker threads FastAPI runs sync routes and run_in_threadpool calls on.

    Asked in a thread of its own: an event loop may already run in this one
    (Playwright's sync API keeps one for the whole session).
    """

    async def tokens() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    found: list[int] = []
    thread = threading.Thread(target=lambda: found.append(anyio.run(tokens)))
    thread.start()
    thread.join()
    return found[0]


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///{tmp}/faafo.sqlite3",
        "postgresql+psycopg://faafo@127.0.0.1:1/faafo",
        "mysql+pymysql://faafo@127.0.0.1:1/faafo",
    ],
    ids=["sqlite", "postgresql-url", "mariadb-url"],
)
def test_the_pool_holds_a_connection_for_every_request_thread(url, tmp_path):
    """Nothing connects here: the pool's size is a property of the engine."""
    database = connect(url.format(tmp=tmp_path))
    pool = database.engine.pool
    assert pool.size() + pool._max_overflow >= request_threads() + 1, "and the reconciler"
    database.dispose()


def test_an_exhausted_pool_answers_503_with_retry_after(database_url, tmp_path):
    settings = load_settings(
        ApiSettings,
        {
            "data_dir": tmp_path,
            "database_url": database_url,
            "transport_url": f"memory://{uuidlib.uuid4().hex}",
            "reconcile_interval": 3600,
        },
    )
    database = connect(database_url, max_connections=1, pool_timeout=0.5)
    with TestClient(create_app(settings, database=database)) as client:
        assert client.get("/v1/fractal").status_code == 200
        with database.engine.connect():  # the pool's only connection, held
            busy = client.get("/v1/fractal")
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "2"
            assert busy.json() == {
                "code": 503,
                "message": "database busy (no free connection), try again shortly",
            }
            task = {"width": 8, "height": 8, "iterations": 8, "xa": -1, "xb": 1, "ya": -1, "yb": 1}
            created = client.post("/v1/fractal", json=task)
            assert created.status_code == 503
        assert client.get("/v1/fractal").status_code == 200, "served again once it is free"
