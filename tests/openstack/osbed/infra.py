"""This machine's MariaDB and RabbitMQ, set up for the bed.

MariaDB's ``root`` often authenticates by socket only, and the services
connect over TCP, so the bed makes a password user of its own (``osbed``) and
its own ``osbed_*`` databases. RabbitMQ gets an ``osbed`` user and vhost. Both
are made through the servers' admin CLIs, which need root (the socket's peer
credentials, RabbitMQ's Erlang cookie): without them the bed is unavailable.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

from .errors import BedError, Unavailable
from .settings import DATABASES, HOST, Settings


def reachable(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# -- MariaDB ----------------------------------------------------------------

def _mariadb_client() -> str:
    for name in ("mariadb", "mysql"):
        found = shutil.which(name)
        if found:
            return found
    raise Unavailable("mariadb", "no mariadb/mysql client on PATH")


def mariadb(sql: str) -> str:
    """Run SQL as MariaDB's root through the local socket."""
    result = subprocess.run([_mariadb_client(), "-u", "root", "--batch", "-e", sql],
                            capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise BedError("mariadb", f"SQL failed: {result.stderr.strip()[:500]}")
    return result.stdout


def check_mariadb() -> None:
    if not reachable(3306):
        raise Unavailable("mariadb", f"MariaDB is not listening on {HOST}:3306")
    client = _mariadb_client()
    result = subprocess.run([client, "-u", "root", "--batch", "-e", "SELECT 1"],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise Unavailable("mariadb", "cannot log in as MariaDB root through the socket "
                          f"(run as root?): {result.stderr.strip()[:300]}")


def create_databases(settings: Settings) -> None:
    """Fresh, empty databases and a password user for 127.0.0.1 (and the
    ``localhost`` name a TCP connection may resolve to)."""
    user, password = settings.db_user, settings.db_password
    statements = []
    for host in ("127.0.0.1", "localhost"):
        statements += [
            f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{password}'",
            f"ALTER USER '{user}'@'{host}' IDENTIFIED BY '{password}'",
        ]
    for name in DATABASES:
        database = settings.database(name)
        statements += [
            f"DROP DATABASE IF EXISTS `{database}`",
            f"CREATE DATABASE `{database}` CHARACTER SET utf8 COLLATE utf8_general_ci",
        ]
        for host in ("127.0.0.1", "localhost"):
            statements.append(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'")
    statements.append("FLUSH PRIVILEGES")
    mariadb(";\n".join(statements) + ";")


def drop_databases(settings: Settings) -> None:
    statements = [f"DROP DATABASE IF EXISTS `{settings.database(n)}`" for n in DATABASES]
    statements += [f"DROP USER IF EXISTS '{settings.db_user}'@'{h}'"
                   for h in ("127.0.0.1", "localhost")]
    mariadb(";\n".join(statements) + ";")


# -- RabbitMQ ---------------------------------------------------------------

def _rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise Unavailable("rabbitmq", "no rabbitmqctl on PATH (needed for the bed's own vhost)")
    result = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=120,
                            check=False)
    if check and result.returncode != 0:
        raise BedError("rabbitmq", f"rabbitmqctl {' '.join(args[:2])} failed: "
                       f"{(result.stderr or result.stdout).strip()[:500]}")
    return result


def check_rabbitmq() -> None:
    if not reachable(5672):
        raise Unavailable("rabbitmq", f"RabbitMQ is not listening on {HOST}:5672")
    result = _rabbitmqctl("list_vhosts", check=False)
    if result.returncode != 0:
        raise Unavailable("rabbitmq", "rabbitmqctl cannot talk to the node (run as root?): "
                          f"{(result.stderr or result.stdout).strip()[:300]}")


def create_vhost(settings: Settings) -> None:
    """A fresh vhost (queues of an earlier bed are gone) and our own user."""
    vhost, user = settings.rabbit_vhost, settings.rabbit_user
    _rabbitmqctl("delete_vhost", vhost, check=False)
    _rabbitmqctl("add_vhost", vhost)
    if _rabbitmqctl("add_user", user, settings.rabbit_password, check=False).returncode != 0:
        _rabbitmqctl("change_password", user, settings.rabbit_password)
    _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(settings: Settings) -> None:
    _rabbitmqctl("delete_vhost", settings.rabbit_vhost, check=False)
    _rabbitmqctl("delete_user", settings.rabbit_user, check=False)


def queues_with_consumers(vhost: str) -> set[str]:
    """Queues that some process consumes: an RPC worker is ready once its
    topic queue has a consumer."""
    result = _rabbitmqctl("list_queues", "-p", vhost, "name", "consumers", "--quiet",
                          "--no-table-headers", check=False)
    consumed = set()
    for line in result.stdout.splitlines():
        name, _, consumers = line.rpartition("\t")
        if consumers.strip().isdigit() and int(consumers) > 0:
            consumed.add(name)
    return consumed
