"""The consume -> claim -> render -> deliver -> acknowledge loop.

kombu connections are not thread-safe, so the connection thread only
receives messages and settles them (ack, requeue, dead-letter); renders run
in a pool of ``concurrency`` slots and hand back an outcome. With prefetch
equal to the number of slots, a worker holds no more messages than it can
render, so a queue of long tasks spreads evenly over workers, and a worker
added later gets its share at once.

A message is acknowledged only after the API confirmed the result (or said
the task needs no work: done, failed, deleted). Any failure before that
leaves the message unacknowledged; the broker gives it to another worker.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from kombu import Consumer, Producer
from kombu.message import Message

from faafo import logs
from faafo.config import WorkerSettings
from faafo.messaging import broker
from faafo.messaging.messages import PoisonMessage, TaskMessage, decode
from faafo.messaging.topology import DEAD_EXCHANGE, DEAD_QUEUE, TASK_QUEUE
from faafo.worker import rendering
from faafo.worker.api_client import ApiRejected, ApiUnavailable, Delivery, WorkerApi
from faafo.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    ACK = "ack"
    REQUEUE = "requeue"
    DEAD = "dead"


class Worker:
    def __init__(
        self, settings: WorkerSettings, api: WorkerApi, metrics: WorkerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.metrics = metrics or WorkerMetrics(api.worker)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="slot")
        self._inflight: dict[Future[tuple[Outcome, str]], Message] = {}
        self._held: dict[str, float] = {}
        self._held_lock = threading.Lock()
        self._lease_seconds = 60.0
        cores = os.cpu_count() or 1
        self._threads = settings.render_threads or max(1, cores // settings.concurrency)
        self.processed = 0

    # -- control ------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume until asked to stop, reconnecting to the broker whenever it goes away."""
        heartbeats = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeats.start()
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._consume()
                backoff = 0.5
            except Exception as error:
                log.warning(
                    "queue connection lost (%s: %s); reconnecting in %.1fs",
                    error.__class__.__name__,
                    error,
                    backoff,
                )
                # Unsettled messages of a dead connection go back to the queue by
                # themselves; their results, once delivered, are idempotent.
                self._inflight.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        # Renders still running were given back to the queue; don't wait for them.
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the connection thread ----------------------------------------------

    def _consume(self) -> None:
        connection = broker.connection(self.settings.transport_url)
        try:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            for queue in (TASK_QUEUE, DEAD_QUEUE):
                queue(channel).declare()
            self._dead = Producer(channel, exchange=DEAD_EXCHANGE, routing_key="dead")
            consumer = Consumer(
                channel,
                queues=[TASK_QUEUE],
                on_message=self._on_message,
                prefetch_count=self.settings.concurrency,
                no_ack=False,
            )
            consumer.consume()
            log.info(
                "consuming from %s with %d slot(s)",
                broker.redact(self.settings.transport_url),
                self.settings.concurrency,
            )
            while not self._stop.is_set():
                self._settle()
                try:
                    connection.drain_events(timeout=0.05 if self._inflight else 0.5)
                except TimeoutError:
                    connection.heartbeat_check()
            consumer.cancel()
            self._drain_inflight(connection)
        finally:
            try:
                connection.release()
            except Exception:
                log.debug("error releasing connection", exc_info=True)

    def _drain_inflight(self, connection) -> None:  # type: ignore[no-untyped-def]
        """On stop: finish the tasks in hand (up to stop_timeout), give back the rest."""
        deadline = time.monotonic() + self.settings.stop_timeout
        while self._inflight and time.monotonic() < deadline:
            self._settle(wait=0.1)
            try:
                connection.heartbeat_check()
            except Exception:
                break
        for future, message in list(self._inflight.items()):
            future.cancel()
            message.requeue()
            log.info("gave an unfinished message back to the queue")
        self._inflight.clear()

    def _on_message(self, message: Message) -> None:
        if message.delivery_info.get("redelivered"):
            self.metrics.redeliveries.inc()
        future = self._pool.submit(self._process, message.body)
        self._inflight[future] = message

    def _settle(self, wait: float = 0.0) -> None:
        if wait and self._inflight:
            done = [f for f in self._inflight if f.done()]
            if not done:
                time.sleep(wait)
        for future in [f for f in self._inflight if f.done()]:
            message = self._inflight.pop(future)
            try:
                outcome, reason = future.result()
            except Exception as error:
                log.exception("processing crashed")
                outcome, reason = Outcome.REQUEUE, str(error)
            self.metrics.messages.labels(outcome.value).inc()
            if outcome is Outcome.ACK:
                message.ack()
                self.processed += 1
            elif outcome is Outcome.REQUEUE:
                message.requeue()
            else:
                self._dead.publish(
                    message.body,
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    headers={"x-faafo-reason": reason[:500]},
                    delivery_mode=2,
                    declare=[DEAD_QUEUE],
                )
                message.ack()
                log.warning("dead-lettered a message: %s", reason)

    # -- the slots ----------------------------------------------------------

    def _process(self, body: bytes | str) -> tuple[Outcome, str]:
        try:
            tasks = decode(body)
        except PoisonMessage as error:
            self._report_poison(body, str(error))
            return Outcome.DEAD, str(error)
        if len(tasks) == 1 and tasks[0].band is not None:
            return self._process_band(tasks[0])
        if len(tasks) == 1 and tasks[0].assemble is not None:
            return self._process_assembly(tasks[0])
        try:
            claims = self.api.claim([t.uuid for t in tasks])
        except (ApiUnavailable, ApiRejected) as error:
            log.error("could not claim %d task(s): %s", len(tasks), error)
            return Outcome.REQUEUE, str(error)
        wanted = {c["uuid"] for c in claims if c["render"]}
        skipped = len(tasks) - len(wanted)
        if skipped:
            self.metrics.tasks.labels(self.api.worker, "skipped").inc(skipped)
        if claims:
            self._lease_seconds = float(claims[0].get("lease_seconds", self._lease_seconds))
        todo = [t for t in tasks if t.uuid in wanted]
        deliveries, failures = self._render_all(todo)
        try:
            if failures:
                self.api.report_failures(failures)
            if deliveries:
                outcome = self._deliver(deliveries)
                log.info("delivered %d result(s): %s", len(deliveries), _summary(outcome))
        except (ApiUnavailable, ApiRejected) as error:
            log.error("could not deliver %d result(s): %s", len(deliveries), error)
            self.metrics.upload_failures.inc()
            return Outcome.REQUEUE, str(error)
        finally:
            self._release(t.uuid for t in todo)
        return Outcome.ACK, ""

    def _deliver(self, deliveries: list[Delivery]) -> dict[str, str]:
        started = time.perf_counter()
        outcome = self.api.deliver(deliveries)
        self.metrics.upload_seconds.observe(time.perf_counter() - started)
        return outcome

    def _observe(self, delivery: Delivery) -> None:
        self.metrics.render_seconds.labels(delivery.kind).observe(delivery.render_seconds)
        self.metrics.encode_seconds.labels(delivery.kind).observe(delivery.encode_seconds)
        self.metrics.tasks.labels(self.api.worker, "rendered").inc()

    def _process_band(self, task: TaskMessage) -> tuple[Outcome, str]:
        """One band of a huge task: rendered here, assembled later by whichever worker."""
        assert task.band is not None
        try:
            claim = self.api.claim_band(task.uuid, task.band)
            if not claim["render"]:
                return Outcome.ACK, claim["reason"]
            self._hold([task.uuid])
            with logs.task_context(task.uuid):
                try:
                    delivery = rendering.render(task, self._threads)
                except Exception as error:  # the task fails, the worker carries on
                    self.metrics.tasks.labels(self.api.worker, "failed").inc()
                    log.exception("band %d failed", task.band)
                    self.api.report_failures({task.uuid: f"band {task.band} failed: {error}"})
                    return Outcome.ACK, str(error)
                self._observe(delivery)
                result = self.api.deliver_band(task.uuid, task.band, delivery)
                log.info("delivered band %d of %s: %s", task.band, task.uuid, result["result"])
        except (ApiUnavailable, ApiRejected) as error:
            log.error("band %s/%s not delivered: %s", task.uuid, task.band, error)
            return Outcome.REQUEUE, str(error)
        finally:
            self._release([task.uuid])
        return Outcome.ACK, ""

    def _process_assembly(self, task: TaskMessage) -> tuple[Outcome, str]:
        """Every band is stored: join them into the one PNG the user asked for."""
        import tempfile

        try:
            (claim,) = self.api.claim([task.uuid])
            if not claim["render"]:
                return Outcome.ACK, claim["reason"]
            self._hold([task.uuid])
            with tempfile.TemporaryDirectory(prefix="faafo-assembly-") as spool:
                delivery = rendering.assemble(
                    task, lambda index: self.api.fetch_band(task.uuid, index), Path(spool)
                )
            outcome = self._deliver([delivery])
            log.info("assembled %s from %d bands: %s", task.uuid, task.assemble, outcome[task.uuid])
        except (ApiUnavailable, ApiRejected) as error:
            log.error("assembly of %s not delivered: %s", task.uuid, error)
            return Outcome.REQUEUE, str(error)
        finally:
            self._release([task.uuid])
        return Outcome.ACK, ""

    def _render_all(self, todo: list[TaskMessage]) -> tuple[list[Delivery], dict[str, str]]:
        """Render each task of a message; a task that cannot render fails alone."""
        deliveries: list[Delivery] = []
        failures: dict[str, str] = {}
        self._hold(t.uuid for t in todo)
        self.metrics.busy_slots.inc()
        try:
            for task in todo:
                with logs.task_context(task.uuid):
                    try:
                        delivery = rendering.render(task, self._threads)
                    except Exception as error:  # the task fails, the worker carries on
                        self.metrics.tasks.labels(self.api.worker, "failed").inc()
                        log.exception("render failed")
                        failures[task.uuid] = f"render failed: {error.__class__.__name__}: {error}"
                        continue
                    self._observe(delivery)
                    log.info(
                        "rendered %dx%d in %.3fs (%d bytes)",
                        task.width,
                        task.height,
                        delivery.duration,
                        len(delivery.png),
                    )
                    deliveries.append(delivery)
        finally:
            self.metrics.busy_slots.dec()
        return deliveries, failures

    def _report_poison(self, body: bytes | str, reason: str) -> None:
        uuid = _sniff_uuid(body)
        if uuid:
            try:
                self.api.report_failures({uuid: f"unusable task message: {reason}"})
            except (ApiUnavailable, ApiRejected):
                log.warning("could not report poison task %s", uuid)

    # -- leases -------------------------------------------------------------

    def _hold(self, uuids) -> None:  # type: ignore[no-untyped-def]
        with self._held_lock:
            for uuid in uuids:
                self._held[uuid] = time.monotonic()

    def _release(self, uuids) -> None:  # type: ignore[no-untyped-def]
        with self._held_lock:
            for uuid in uuids:
                self._held.pop(uuid, None)

    def _heartbeat_loop(self) -> None:
        """Renew the leases of long renders so the reconciler does not take them away."""
        while not self._stop.wait(max(1.0, self._lease_seconds / 3)):
            with self._held_lock:
                uuids = list(self._held)
            if uuids:
                try:
                    self.api.heartbeat(uuids)
                except (ApiUnavailable, ApiRejected) as error:
                    log.warning("lease renewal failed: %s", error)


def _sniff_uuid(body: bytes | str) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return None
    uuid = data.get("uuid") if isinstance(data, dict) else None
    return uuid if isinstance(uuid, str) and len(uuid) <= 36 else None


def _summary(outcome: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for value in outcome.values():
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def default_name() -> str:
    return socket.gethostname()
