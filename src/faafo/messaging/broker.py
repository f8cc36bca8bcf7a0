"""Connections to the message queue chosen by ``transport_url``.

``amqp://`` is RabbitMQ; ``embedded://PATH`` is our SQLite-backed transport
for a single machine with no broker to install. Everything above this module
uses plain kombu, so both go through the same code.

RabbitMQ connections negotiate AMQP heartbeats (``HEARTBEAT_SECONDS``, or
``?heartbeat=N`` on the URL). Without them a peer that stops without closing
its socket -- a frozen or partitioned worker -- keeps its unacknowledged
messages until TCP gives up, which takes many minutes; with them RabbitMQ
closes the connection after about two missed intervals and hands the messages
to another worker. Every connection user must therefore keep reading its
socket and call ``heartbeat_check()`` well within each interval.
"""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlencode

from kombu import Connection

HEARTBEAT_SECONDS = 20.0
# A send that cannot leave the machine for this long means the broker is gone.
WRITE_TIMEOUT_SECONDS = 10.0


def is_embedded(url: str) -> bool:
    return url.startswith("embedded:")


def split_heartbeat(url: str) -> tuple[str, float]:
    """The URL without its ``heartbeat`` query option, and the heartbeat to ask for.

    The option is ours to read (kombu would also take it, as text), so that the
    interval every faafo connection negotiates is decided in one place.
    """
    # The query follows the host: a password may itself contain "?".
    credentials, at, location = url.rpartition("@")
    location, sep, query = location.partition("?")
    base = credentials + at + location
    if not sep:
        return url, HEARTBEAT_SECONDS
    options = parse_qsl(query, keep_blank_values=True)
    heartbeat = HEARTBEAT_SECONDS
    kept = []
    for name, value in options:
        if name != "heartbeat":
            kept.append((name, value))
            continue
        try:
            heartbeat = float(value)
        except ValueError:
            heartbeat = -1.0
        if not heartbeat >= 0:  # also refuses NaN
            raise ValueError(
                f"heartbeat in the transport URL must be a number of seconds, got {value!r}"
            )
    return (f"{base}?{urlencode(kept)}" if kept else base), heartbeat


def connection(url: str, *, confirm_publish: bool = False) -> Connection:
    """A kombu connection (not yet connected) with heartbeats and sane timeouts."""
    if is_embedded(url):
        from faafo.messaging import embedded

        embedded.register()
        return Connection(url)
    url, heartbeat = split_heartbeat(url)
    options: dict = {"write_timeout": WRITE_TIMEOUT_SECONDS}
    if confirm_publish:
        options["confirm_publish"] = True
    return Connection(
        url,
        heartbeat=heartbeat,
        connect_timeout=5,
        transport_options=options,
    )


def close(connection: Connection, *, graceful: bool, seconds: float = 3.0) -> None:
    """Close ``connection``: politely when ``graceful`` and the broker answers within
    ``seconds``, else by dropping the socket. The AMQP closing handshake waits for the
    broker with no time limit, so a connection that failed (or a broker gone silent)
    must never get it: closing would hang until TCP gives up. The embedded queue has
    no broker to wait for: it is always closed in full (that returns held messages)."""
    if connection.transport_cls == "embedded":
        connection.release()
        return
    if graceful:
        closing = threading.Thread(target=connection.release, name="queue-close", daemon=True)
        closing.start()
        closing.join(seconds)
        if not closing.is_alive():
            return
    connection.collect()


def heartbeat_interval(connection: Connection) -> float:
    """The heartbeat the broker agreed to on a connected ``connection`` (0: none)."""
    transport_connection = connection.connection
    return float(getattr(transport_connection, "heartbeat", 0) or 0)


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
