"""Checks of the URLs a deployment is configured with: database, queue, API endpoints.

Each ``check_*`` returns the URL unchanged or raises ValueError with one line that
names what is wrong, so a typo stops a program at start-up with that line instead of
a traceback from its first connection (or, for the queue, an API that is never
ready). Messages never show a password: see :func:`redact_url`.
"""

from __future__ import annotations

import re
import urllib.parse


def redact_url(url: str) -> str:
    """``url`` with the password of ``scheme://user:password@host`` replaced by ``***``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def check_database_url(url: str) -> str:
    """``url`` if it names a supported database whose driver is installed, else ValueError.

    Checked when the settings are built, so a typo is one line at start-up instead of a
    traceback from the first connection.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    example = "sqlite:////path/faafo.sqlite3 or postgresql+psycopg://user:password@host/db"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"{redact_url(url)!r} is not a database URL ({example})") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ValueError(
            f"unsupported database {parsed.get_backend_name()!r} in {redact_url(url)!r}: "
            "use sqlite, postgresql or mysql (MariaDB)"
        )
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise ValueError(f"unknown database driver {parsed.drivername!r}") from None
    except ImportError as error:
        raise ValueError(
            f"the driver of {parsed.drivername!r} is not installed (module {error.name})"
        ) from None
    return url


def check_transport_url(url: str) -> str:
    """``url`` if kombu (or our embedded queue) has a transport for its scheme, else ValueError."""
    scheme, sep, rest = url.partition("://")
    example = "amqp://user:password@host:5672/vhost or embedded:///path/queue.sqlite3"
    if not sep or not scheme:
        raise ValueError(f"{redact_url(url)!r} is not a queue URL ({example})")
    base = scheme.split("+", 1)[0]
    if base == "embedded":
        if not rest.startswith("/") or rest.rstrip("/") == "":
            raise ValueError(f"{url!r}: the embedded queue needs a file, embedded:///path/file")
        return url
    from kombu.transport import TRANSPORT_ALIASES

    if base not in TRANSPORT_ALIASES:
        raise ValueError(f"unknown queue transport {scheme!r} ({example})")
    return url


def check_endpoint_urls(value: str) -> str:
    """A comma-separated list of http(s) URLs with a host, else ValueError naming the bad one."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise ValueError("needs at least one http:// or https:// URL")
    for entry in entries:
        parsed = urllib.parse.urlsplit(entry)
        try:
            parsed.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            raise ValueError(f"{entry!r} has a bad port") from None
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{entry!r} is not an http:// or https:// URL with a host")
    return value
