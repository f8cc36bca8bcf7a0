"""Publishing task messages from the API, with broker confirms and reconnects.

``publish`` returns only once the broker has the messages (RabbitMQ publisher
confirms; the embedded queue writes before returning), so the caller may then
record them as published. It fails fast when the broker is unreachable (one
short connection attempt, then no attempt at all for a few seconds): the tasks
are committed already, the request answers at once, and the reconciler
publishes them when the broker is back.
"""

from __future__ import annotations

import logging
import threading
import time

from kombu import Connection, Producer

from faafo.messaging import broker
from faafo.messaging.messages import TaskMessage, encode
from faafo.messaging.topology import DEAD_QUEUE, TASK_EXCHANGE, TASK_QUEUE

log = logging.getLogger(__name__)


class Publisher:
    """One lazily opened connection shared by the API's threads, behind a lock."""

    def __init__(self, url: str, *, retries: int = 1, backoff: float = 5.0) -> None:
        self.url = url
        self._retries = retries
        self._backoff = backoff
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None

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
        return self._producer

    def _reset(self) -> None:
        if self._connection is not None:
            try:
                self._connection.release()
            except Exception:
                log.debug("error closing broken connection", exc_info=True)
        self._connection = None
        self._producer = None

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
                        )
                    return
                except Exception:
                    self._reset()
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
        with self._lock:
            self._reset()
