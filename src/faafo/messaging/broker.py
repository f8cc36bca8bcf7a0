"""Connections to the message queue chosen by ``transport_url``.

``amqp://`` is RabbitMQ; ``embedded://PATH`` is our SQLite-backed transport
for a single machine with no broker to install. Everything above this module
uses plain kombu, so both go through the same code.
"""

from __future__ import annotations

from kombu import Connection

HEARTBEAT_SECONDS = 20


def is_embedded(url: str) -> bool:
    return url.startswith("embedded:")


def connection(url: str, *, confirm_publish: bool = False) -> Connection:
    """A kombu connection (not yet connected) with heartbeats and sane timeouts."""
    if is_embedded(url):
        from faafo.messaging import embedded

        embedded.register()
        return Connection(url)
    options: dict = {}
    if confirm_publish:
        options["confirm_publish"] = True
    return Connection(
        url,
        heartbeat=HEARTBEAT_SECONDS,
        connect_timeout=5,
        transport_options=options,
    )


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
