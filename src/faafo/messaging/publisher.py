"""Publishing task messages from the API, with broker confirms and reconnects.

``publish`` returns only once the broker has the messages (RabbitMQ publisher
confirms; the embedded queue writes before returning), so the caller may then
record them as published. It fails fast when the broker is unreachable (one
short connection attempt, then no attempt at all for a few seconds): the tasks
are committed already, the request answers at once, and the reconciler
publishes them when the broker is back.

Every wait is bounded. A broker that stops answering without closing the
connection (a silent network partition) would otherwise hold the publisher
lock forever, and every create behind it: a confirm not received within
``confirm_timeout`` fails the publish and drops the connection. Between
publishes, a ticker thread reads the connection and runs the AMQP heartbeat,
so an idle connection stays open (RabbitMQ closes one that stays silent for
two intervals) and one that died is noticed and dropped before the next
create has to find out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from kombu import Connection, Producer

from faafo.messaging import broker
from faafo.messaging.messages import TaskMessage, encode
from faafo.messaging.topology import DEAD_QUEUE, TASK_EXCHANGE, TASK_QUEUE

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 10.0


class Publisher:
    """One lazily opened connection shared by the API's threads, behind a lock."""

    def __init__(
        self,
        url: str,
        *,
        retries: int = 1,
        backoff: float = 5.0,
        confirm_timeout: float = CONFIRM_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self._retries = retries
        self._backoff = backoff
        self._confirm_timeout = confirm_timeout
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None

    def _ensure(self) -> Producer:
        if self._connection is None:
            self._connection = broker.connection(self.url, confirm_publish=True)
        if self._producer is None:
            if time.monotonic() < self._down_until:
                raise ConnectionError(
                    f"queue {broker.redact(self.url)} was unreachable moments ago"
                )
            try:
                self._connection.ensure_connection(max_retries=1, interval_start=0, timeout=3)
            except Exception:
                self._down_until = time.monotonic() + self._backoff
                raise
            channel = self._connection.channel()
            for queue in (TASK_QUEUE, DEAD_QUEUE):
                queue(channel).declare()
            self._producer = Producer(channel, exchange=TASK_EXCHANGE, routing_key="normal")
            self._start_ticker(broker.heartbeat_interval(self._connection))
        return self._producer

    def _reset(self, graceful: bool = False) -> None:
        """Forget the connection. After an error, drop its socket without the AMQP
        closing handshake: a broker that stopped answering would never complete it."""
        connection, self._connection, self._producer = self._connection, None, None
        if connection is None:
            return
        try:
            broker.close(connection, graceful=graceful)
        except Exception:
            log.debug("error closing the queue connection", exc_info=True)

    def publish(self, messages: list[list[TaskMessage]]) -> None:
        """Publish each group of tasks as one persistent message."""
        with self._lock:
            for attempt in range(self._retries + 1):
                try:
                    producer = self._ensure()
                    for group in messages:
                        producer.publish(
                            encode(group),
                            content_type="application/json",
                            content_encoding="utf-8",
                            delivery_mode=2,
                            routing_key="normal",
                            timeout=self._confirm_timeout,
                            confirm_timeout=self._confirm_timeout,
                        )
                    return
                except Exception as error:
                    self._reset()
                    if isinstance(error, TimeoutError):
                        # The broker is there but silent: another connection attempt
                        # would only wait again. Fail now and for a little while.
                        self._down_until = time.monotonic() + self._backoff
                        log.warning(
                            "the queue did not confirm a publish within %.0fs; "
                            "the reconciler will publish these tasks",
                            self._confirm_timeout,
                        )
                        raise
                    if attempt == self._retries:
                        raise
                    log.warning("publish failed, reconnecting (%d)", attempt + 1, exc_info=True)

    def queue_depth(self) -> int:
        """Messages ready on the task queue (not those held by workers)."""
        with self._lock:
            try:
                self._ensure()
                assert self._connection is not None
                declared = TASK_QUEUE(self._connection.default_channel).queue_declare(passive=True)
                return int(declared.message_count)
            except Exception:
                self._reset()
                raise

    def ping(self) -> None:
        self.queue_depth()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._reset(graceful=True)

    # -- heartbeats ---------------------------------------------------------

    def _start_ticker(self, heartbeat: float) -> None:
        """Once per publisher, when the broker agreed to heartbeats (RabbitMQ only)."""
        if heartbeat <= 0 or self._ticker is not None:
            return
        self._ticker = threading.Thread(
            target=self._tick_forever,
            args=(max(0.2, heartbeat / 4),),
            name="publisher-heartbeat",
            daemon=True,
        )
        self._ticker.start()

    def _tick_forever(self, interval: float) -> None:
        while not self._closed.wait(interval):
            # A publish in progress is traffic too: skip this tick rather than wait.
            if not self._lock.acquire(timeout=interval):
                continue
            try:
                self._tick()
            finally:
                self._lock.release()

    def _tick(self) -> None:
        """Read what the broker sent (its heartbeats), send ours, drop a dead connection."""
        connection = self._connection
        if connection is None or self._producer is None:
            return
        try:
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.01)
            connection.heartbeat_check()
        except Exception as error:
            log.warning(
                "queue connection lost while idle (%s: %s); reconnecting on the next publish",
                error.__class__.__name__,
                error,
            )
            self._reset()
