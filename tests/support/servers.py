"""This machine's RabbitMQ, PostgreSQL and MariaDB, each test run isolated in its own
vhost or database. Missing servers skip the test with the reason, unless
``FAAFO_REQUIRE_SERVERS=1`` (CI), where they fail it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid

import pytest

REQUIRED = os.environ.get("FAAFO_REQUIRE_SERVERS") == "1"
HOST = "127.0.0.1"


def reachable(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unavailable(what: str) -> None:
    message = f"{what} is not available on this machine"
    if REQUIRED:
        pytest.fail(message + " (FAAFO_REQUIRE_SERVERS=1: servers are required)")
    pytest.skip(message)


def unique(prefix: str) -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}_{worker}_{uuid.uuid4().hex[:8]}"


def rabbitmq_vhost() -> tuple[str, callable]:
    """A fresh vhost (so parallel tests never share the ``normal`` queue)."""
    if not reachable(5672):
        unavailable("RabbitMQ on 127.0.0.1:5672")
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        unavailable("rabbitmqctl (to create an isolated vhost)")
    vhost = unique("faafo")
    for command in (
        ["add_vhost", vhost],
        ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    ):
        subprocess.run([ctl, *command], check=True, capture_output=True, timeout=60)

    def cleanup() -> None:
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True, timeout=60)

    return f"amqp://guest:guest@{HOST}:5672/{vhost}", cleanup


def postgres_database() -> tuple[str, callable]:
    if not reachable(5432):
        unavailable("PostgreSQL on 127.0.0.1:5432")
    from sqlalchemy import create_engine, text

    name = unique("faafo")
    admin = create_engine(
        f"postgresql+psycopg://postgres@{HOST}:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def cleanup() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql+psycopg://postgres@{HOST}:5432/{name}", cleanup


def mariadb_database() -> tuple[str, callable]:
    if not reachable(3306):
        unavailable("MariaDB on 127.0.0.1:3306")
    from sqlalchemy import create_engine, text

    name = unique("faafo")
    admin = create_engine(f"mysql+pymysql://root@{HOST}:3306/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE `{name}`"))

    def cleanup() -> None:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()

    return f"mysql+pymysql://root@{HOST}:3306/{name}", cleanup
