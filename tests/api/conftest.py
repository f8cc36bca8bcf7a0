"""An in-process API on a temporary SQLite database and kombu's in-process queue."""

from __future__ import annotations

import hashlib
import io
import uuid as uuidlib

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faafo.api.app import create_app
from faafo.config import ApiSettings, load_settings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.delenv("FAAFO_DATABASE_URL", raising=False)
    return load_settings(
        ApiSettings,
        {
            "data_dir": tmp_path,
            "transport_url": f"memory://{uuidlib.uuid4().hex}",
            "reconcile_interval": 3600,
            "max_pixels": 1_000_000,
            "max_iterations": 5000,
            "max_tasks_per_request": 50,
        },
    )


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def client(app, settings):
    # kombu's memory transport is one store per process: start each test empty.
    from kombu import Connection

    from faafo.messaging.topology import TASK_QUEUE

    with Connection(settings.transport_url) as connection:
        TASK_QUEUE(connection.default_channel).declare()
        TASK_QUEUE(connection.default_channel).purge()
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def services(app, client):
    return app.state.services


def task(**overrides):
    body = {
        "width": 32,
        "height": 24,
        "iterations": 64,
        "xa": -2.0,
        "xb": 2.0,
        "ya": -1.5,
        "yb": 1.5,
    }
    body.update(overrides)
    return body


def png_bytes(width=32, height=24, colour=(10, 20, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
