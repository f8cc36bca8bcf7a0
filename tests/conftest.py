"""Fixtures for real servers (isolated per test) and temporary data directories."""

from __future__ import annotations

import logging

import pytest

from support import servers


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """A test that runs a service's main() in-process (``logs.setup``) leaves the
    root logger writing to that test's captured stderr, which pytest then
    closes; later tests in the same process would log into the closed stream.
    Put the root logger back as it was after every test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def rabbitmq_url():
    url, cleanup = servers.rabbitmq_vhost()
    yield url
    cleanup()


@pytest.fixture
def postgres_url():
    url, cleanup = servers.postgres_database()
    yield url
    cleanup()


@pytest.fixture
def mariadb_url():
    url, cleanup = servers.mariadb_database()
    yield url
    cleanup()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'faafo.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request):
    """The same test on each supported database."""
    return request.getfixturevalue(
        {"sqlite": "sqlite_url", "postgresql": "postgres_url", "mariadb": "mariadb_url"}[
            request.param
        ]
    )
