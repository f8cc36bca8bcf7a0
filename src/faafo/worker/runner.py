"""The consume -> claim -> render -> deliver -> acknowledge loop.

kombu connections are not thread-safe, so the connection thread only
receives messages and settles them (ack, requeue, dead-letter, split); renders
run in a pool of ``concurrency`` slots and hand back a :class:`Verdict`. With
prefetch equal to the number of slots, a worker holds no more messages than it
can render, so a queue of long tasks spreads evenly over workers, and a worker
added later gets its share at once.

A message is acknowledged only after the API confirmed the result (or said
the task needs no work: done, failed, deleted). Any failure before that
leaves the message unacknowledged; the broker gives it to another worker.

What the API answers decides what happens to a message:

* 401/403 on a claim: this worker's token is wrong; 404/405: the endpoint is
  not a faafo API. Nothing is wrong with the message, so the slot keeps it
  and retries with a bounded exponential back-off, after one error line.
* any other 4xx on a claim: the message can never be claimed (a bundle too
  long, a body too large): poison. Its tasks are failed with the reason and
  the message is dead-lettered.
* the API unreachable, 5xx, 429, a redirect or non-JSON answer: retried for
  ``upload_retry_seconds``, then the message is given back after a back-off.

A poison message is dead-lettered only once the API has failed the tasks it
names; until the API takes that report the message is kept and retried.

Attempts: every claim counts one attempt of each task it names, and a task
claimed more than ``max_attempts`` times fails. A graceful give-back (the
worker stops, or could not deliver) releases its claims through the API, so
it does not count. A bundle whose tasks come back already attempted was held
by a worker that vanished -- perhaps killed by one of them -- so it is split
into one message per task: only the task that kills workers keeps failing.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kombu import Connection, Consumer, Producer
from kombu.message import Message

from faafo import logs
from faafo.config import WorkerSettings
from faafo.messaging import broker
from faafo.messaging.messages import PoisonMessage, TaskMessage, decode, encode, named_uuids
from faafo.messaging.topology import DEAD_EXCHANGE, DEAD_QUEUE, TASK_EXCHANGE, TASK_QUEUE
from faafo.worker import rendering
from faafo.worker.api_client import (
    AUTH_STATUSES,
    ApiRejected,
    ApiUnavailable,
    Delivery,
    WorkerApi,
)
from faafo.worker.backoff import Backoff
from faafo.worker.metrics import WorkerMetrics

log = logging.getLogger(__name__)

# Answers to a claim that blame this worker's set-up, not the message.
MISCONFIGURED = (*AUTH_STATUSES, 404, 405)

T = TypeVar("T")


class Outcome(enum.Enum):
    ACK = "ack"
    REQUEUE = "requeue"
    DEAD = "dead"
    SPLIT = "split"


@dataclass
class Verdict:
    """What the connection thread does with a message once its slot is done."""

    outcome: Outcome
    reason: str = ""
    parts: list[TaskMessage] = field(default_factory=list)  # SPLIT: one message each


@dataclass
class _Job:
    """One message in a slot, and the claims a give-back must release."""

    body: bytes | str
    claimed: list[str] = field(default_factory=list)
    abandoned: bool = False


class Worker:
    def __init__(
        self, settings: WorkerSettings, api: WorkerApi, metrics: WorkerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.metrics = metrics or WorkerMetrics(api.worker)
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="slot")
        self._inflight: dict[Future[Verdict], tuple[Message, _Job]] = {}
        self._held: dict[str, float] = {}
        self._held_lock = threading.Lock()
        self._lease_seconds = 60.0
        self._refused = Backoff(1.0, 60.0)  # the API refuses this worker (token, endpoint)
        self._unreachable = Backoff(1.0, 30.0)  # the API is down or answers nonsense
        self._crashing = Backoff(1.0, 30.0)  # processing raised something unexpected
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
        healthy = False
        try:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            for queue in (TASK_QUEUE, DEAD_QUEUE):
                queue(channel).declare()
            self._dead = Producer(channel, exchange=DEAD_EXCHANGE, routing_key="dead")
            self._tasks = Producer(channel, exchange=TASK_EXCHANGE, routing_key="normal")
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
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.05 if self._inflight else 0.5)
                # Every turn, not only when idle: a busy connection must send its
                # heartbeats too, or the broker takes it for dead.
                connection.heartbeat_check()
            consumer.cancel()
            self._drain_inflight(connection)
            healthy = True
        finally:
            try:
                broker.close(connection, graceful=healthy)
            except Exception:
                log.debug("error releasing connection", exc_info=True)

    def _drain_inflight(self, connection: Connection) -> None:
        """On stop: finish the tasks in hand (up to stop_timeout), give back the rest."""
        deadline = time.monotonic() + self.settings.stop_timeout
        while self._inflight and time.monotonic() < deadline:
            self._settle(wait=0.1)
            try:
                connection.heartbeat_check()
            except Exception:
                break
        left = list(self._inflight.items())
        for future, (_, job) in left:
            future.cancel()
            job.abandoned = True
        self._give_back([uuid for _, (_, job) in left for uuid in _take_claims(job)])
        for _, (message, _) in left:
            message.requeue()
            log.info("gave an unfinished message back to the queue")
        self._inflight.clear()

    def _on_message(self, message: Message) -> None:
        if message.delivery_info.get("redelivered"):
            self.metrics.redeliveries.inc()
        job = _Job(message.body)
        future = self._pool.submit(self._guarded, job)
        self._inflight[future] = (message, job)

    def _settle(self, wait: float = 0.0) -> None:
        if wait and self._inflight:
            done = [f for f in self._inflight if f.done()]
            if not done:
                time.sleep(wait)
        for future in [f for f in self._inflight if f.done()]:
            message, _ = self._inflight.pop(future)
            try:
                verdict = future.result()
            except Exception as error:
                log.exception("processing crashed")
                verdict = Verdict(Outcome.REQUEUE, str(error))
            self.metrics.messages.labels(verdict.outcome.value).inc()
            if verdict.outcome is Outcome.ACK:
                message.ack()
                self.processed += 1
            elif verdict.outcome is Outcome.REQUEUE:
                message.requeue()
            elif verdict.outcome is Outcome.SPLIT:
                self._split(message, verdict)
            else:
                self._dead_letter(message, verdict.reason)

    def _dead_letter(self, message: Message, reason: str) -> None:
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

    def _split(self, message: Message, verdict: Verdict) -> None:
        """Publish each task of a bundle as its own message, then drop the bundle."""
        for task in verdict.parts:
            self._tasks.publish(
                encode([task]),
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                routing_key="normal",
            )
        message.ack()
        with logs.tasks_context(t.uuid for t in verdict.parts):
            log.warning(
                "split a bundle into %d message(s), one per task: %s",
                len(verdict.parts),
                verdict.reason,
            )

    # -- the slots ----------------------------------------------------------

    def _guarded(self, job: _Job) -> Verdict:
        """Process one message; an unexpected error gives it back after a back-off.

        Without the pause a bug that crashes on some message would take it
        back from the queue as fast as the queue hands it out.
        """
        try:
            verdict = self._process(job)
        except Exception as error:
            delay, _ = self._crashing.failed()
            log.exception("processing crashed; giving the message back in %.0fs", delay)
            self._stop.wait(delay)
            return Verdict(Outcome.REQUEUE, f"{error.__class__.__name__}: {error}")
        self._crashing.succeeded()
        return verdict

    def _process(self, job: _Job) -> Verdict:
        try:
            tasks = decode(job.body)
        except PoisonMessage as error:
            return self._poison(named_uuids(job.body), str(error))
        if len(tasks) == 1 and tasks[0].band is not None:
            return self._process_band(tasks[0])
        if len(tasks) == 1 and tasks[0].assemble is not None:
            return self._process_assembly(job, tasks[0])
        uuids = [t.uuid for t in tasks]
        with logs.tasks_context(uuids):
            claims = self._claim(lambda: self.api.claim(uuids), uuids)
            if isinstance(claims, Verdict):
                return claims
            wanted = {c["uuid"] for c in claims if c["render"]}
            skipped = len(tasks) - len(wanted)
            if skipped:
                self.metrics.tasks.labels(self.api.worker, "skipped").inc(skipped)
            if claims:
                self._lease_seconds = float(claims[0].get("lease_seconds", self._lease_seconds))
            todo = [t for t in tasks if t.uuid in wanted]
            if len(tasks) > 1 and any(c["render"] and c.get("attempt", 0) > 1 for c in claims):
                return self._split_after_crash(todo)
            job.claimed = [t.uuid for t in todo]
            if job.abandoned:  # given back while the claim was on its way
                self._give_back(_take_claims(job))
                return Verdict(Outcome.REQUEUE, "the worker is stopping")
            deliveries, failures = self._render_all(todo)
            return self._deliver_all(job, deliveries, failures)

    def _claim(self, call: Callable[[], T], uuids: list[str]) -> T | Verdict:
        """Claim through the API, or the verdict on the message when that cannot be done."""
        while True:
            try:
                answer = call()
            except ApiRejected as error:
                if error.status not in MISCONFIGURED:
                    return self._poison(uuids, f"the API refused to claim it ({error})")
                delay, first = self._refused.failed()
                (log.error if first else log.debug)(
                    "the API refuses this worker (%s): %s; keeping the message and "
                    "retrying in %.0fs (at most every %.0fs)",
                    error,
                    _advice(error.status),
                    delay,
                    self._refused.cap,
                )
                if self._stop.wait(delay):
                    return Verdict(Outcome.REQUEUE, "the worker is stopping")
                continue
            except ApiUnavailable as error:
                delay, _ = self._unreachable.failed()
                log.error(
                    "could not claim %d task(s): %s; giving the message back in %.0fs",
                    len(uuids),
                    error,
                    delay,
                )
                self._stop.wait(delay)
                return Verdict(Outcome.REQUEUE, str(error))
            if self._refused.succeeded():
                log.info("the API accepts this worker again")
            self._unreachable.succeeded()
            return answer

    def _split_after_crash(self, todo: list[TaskMessage]) -> Verdict:
        """A bundle whose tasks were claimed before, by a worker that never gave them back."""
        self._give_back([t.uuid for t in todo])
        return Verdict(
            Outcome.SPLIT, "its tasks were claimed before by a worker that vanished", todo
        )

    def _deliver_all(
        self, job: _Job, deliveries: list[Delivery], failures: dict[str, str]
    ) -> Verdict:
        """Report render failures and upload results; ACK only once the API has them all."""
        uuids = [d.uuid for d in deliveries] + list(failures)
        outcome: dict[str, str] = {}
        try:
            if failures:
                self._handing_over(lambda: self.api.report_failures(failures))
            if deliveries:
                outcome = self._deliver(deliveries)
        except (ApiUnavailable, ApiRejected) as error:
            for uuid in uuids:
                with logs.task_context(uuid):
                    log.error("could not deliver the result: %s", error)
            log.error("could not deliver %d result(s): %s", len(uuids), error)
            if isinstance(error, ApiRejected) and error.status not in MISCONFIGURED:
                # The API refuses the result itself: the attempt counts, so a task
                # whose results are always refused ends failed after max_attempts.
                return Verdict(Outcome.REQUEUE, str(error))
            return self._pause_then_requeue(error, job)
        finally:
            self._unhold(uuids)
        job.claimed = []
        self._unreachable.succeeded()
        for delivery in deliveries:
            with logs.task_context(delivery.uuid):
                log.info("delivered: %s", outcome.get(delivery.uuid, "no answer"))
        if deliveries:
            log.info("delivered %d result(s): %s", len(deliveries), _summary(outcome))
        return Verdict(Outcome.ACK)

    def _deliver(self, deliveries: list[Delivery]) -> dict[str, str]:
        started = time.perf_counter()
        outcome = self._handing_over(lambda: self.api.deliver(deliveries))
        self.metrics.upload_seconds.observe(time.perf_counter() - started)
        return outcome

    def _handing_over(self, send: Callable[[], T]) -> T:
        """Hand results (or failure reports) to the API: a call that ends unconfirmed is
        counted here, whichever kind of task (whole, band, assembly) it carried."""
        try:
            return send()
        except (ApiUnavailable, ApiRejected):
            self.metrics.upload_failures.inc()
            raise

    def _observe(self, delivery: Delivery) -> None:
        self.metrics.render_seconds.labels(delivery.kind).observe(delivery.render_seconds)
        self.metrics.encode_seconds.labels(delivery.kind).observe(delivery.encode_seconds)
        self.metrics.tasks.labels(self.api.worker, "rendered").inc()

    def _process_band(self, task: TaskMessage) -> Verdict:
        """One band of a huge task: rendered here, assembled later by whichever worker."""
        assert task.band is not None
        band = task.band
        with logs.task_context(task.uuid):
            claim = self._claim(lambda: self.api.claim_band(task.uuid, band), [task.uuid])
            if isinstance(claim, Verdict):
                return claim
            if not claim["render"]:
                return Verdict(Outcome.ACK, claim["reason"])
            self._hold([task.uuid])
            try:
                try:
                    delivery = rendering.render(task, self._threads)
                except Exception as error:  # the task fails, the worker carries on
                    self.metrics.tasks.labels(self.api.worker, "failed").inc()
                    log.exception("band %d failed", band)
                    self.api.report_failures({task.uuid: f"band {band} failed: {error}"})
                    return Verdict(Outcome.ACK, str(error))
                self._observe(delivery)
                result = self._handing_over(
                    lambda: self.api.deliver_band(task.uuid, band, delivery)
                )
                log.info("delivered band %d: %s", band, result["result"])
            except (ApiUnavailable, ApiRejected) as error:
                log.error("band %d not delivered: %s", band, error)
                return self._pause_then_requeue(error)
            finally:
                self._unhold([task.uuid])
        return Verdict(Outcome.ACK)

    def _process_assembly(self, job: _Job, task: TaskMessage) -> Verdict:
        """Every band is stored: join them into the one PNG the user asked for."""
        import tempfile

        with logs.task_context(task.uuid):
            claims = self._claim(lambda: self.api.claim([task.uuid]), [task.uuid])
            if isinstance(claims, Verdict):
                return claims
            (claim,) = claims
            if not claim["render"]:
                return Verdict(Outcome.ACK, claim["reason"])
            job.claimed = [task.uuid]
            self._hold([task.uuid])
            try:
                with tempfile.TemporaryDirectory(prefix="faafo-assembly-") as spool:
                    delivery = rendering.assemble(
                        task, lambda index: self.api.fetch_band(task.uuid, index), Path(spool)
                    )
                outcome = self._deliver([delivery])
                log.info("assembled from %d bands: %s", task.assemble, outcome[task.uuid])
            except (ApiUnavailable, ApiRejected) as error:
                log.error("assembly not delivered: %s", error)
                return self._pause_then_requeue(error, job)
            finally:
                self._unhold([task.uuid])
        job.claimed = []
        return Verdict(Outcome.ACK)

    def _pause_then_requeue(
        self, error: ApiUnavailable | ApiRejected, job: _Job | None = None
    ) -> Verdict:
        """Give a message back after a back-off, so API trouble is never a hot loop.

        When the API is to blame (unreachable, or refusing this worker) the job's
        claims are released first: the attempt was not the task's fault.
        """
        refused = isinstance(error, ApiRejected) and error.status in MISCONFIGURED
        if job is not None and (refused or isinstance(error, ApiUnavailable)):
            self._give_back(_take_claims(job))
        delay, _ = (self._refused if refused else self._unreachable).failed()
        self._stop.wait(delay)
        return Verdict(Outcome.REQUEUE, str(error))

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

    def _poison(self, uuids: list[str], reason: str) -> Verdict:
        """Fail the tasks an unusable message names, then dead-letter it; never one without
        the other: while the API cannot take the report, the message is kept."""
        if not uuids:
            return Verdict(Outcome.DEAD, reason)
        with logs.tasks_context(uuids):
            try:
                refused = self.api.report_failures(
                    {uuid: f"unusable task message: {reason}" for uuid in uuids}
                )
            except (ApiUnavailable, ApiRejected) as error:
                delay, _ = self._unreachable.failed()
                log.error(
                    "could not report %d task(s) of an unusable message as failed (%s); "
                    "keeping the message, retrying in %.0fs",
                    len(uuids),
                    error,
                    delay,
                )
                self._stop.wait(delay)
                return Verdict(Outcome.REQUEUE, str(error))
            if refused:
                log.warning("the API refused the failure report of %d task(s)", len(refused))
            log.warning("failed %d task(s) of an unusable message: %s", len(uuids), reason)
        return Verdict(Outcome.DEAD, reason)

    def _give_back(self, uuids: list[str]) -> None:
        """Tell the API these claims end unfinished, so the attempt does not count."""
        if not uuids:
            return
        try:
            released = self.api.release(uuids)
        except (ApiUnavailable, ApiRejected) as error:
            log.warning(
                "could not release %d task(s) given back (%s): this attempt counts",
                len(uuids),
                error,
            )
            return
        log.info("released %d of %d task(s) given back", released, len(uuids))

    # -- leases -------------------------------------------------------------

    def _hold(self, uuids: Iterable[str]) -> None:
        with self._held_lock:
            for uuid in uuids:
                self._held[uuid] = time.monotonic()

    def _unhold(self, uuids: Iterable[str]) -> None:
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


def _take_claims(job: _Job) -> list[str]:
    """The job's claims, once: whoever gives the job back releases them."""
    claimed, job.claimed = job.claimed, []
    return claimed


def _advice(status: int) -> str:
    if status == 401:
        return "it needs a worker token (--worker-token or FAAFO_WORKER_TOKEN)"
    if status == 403:
        return "its worker token is not one the API accepts (check --worker-token)"
    return "the endpoint has no worker API (is --endpoint-url the address of a faafo API?)"


def _summary(outcome: dict[str, str]) -> str:
    counts: dict[str, int] = {}
    for value in outcome.values():
        counts[value] = counts.get(value, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def default_name() -> str:
    return socket.gethostname()
