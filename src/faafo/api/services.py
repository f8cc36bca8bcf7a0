"""What the API does, independent of HTTP: create, read, claim, store, reconcile.

Routes translate HTTP into calls here; these functions own the transactions
and the order "commit, then publish" that makes the database the source of
truth (DESIGN.md, data flow step 1).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid as uuidlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError

from faafo import logs
from faafo.config import ApiSettings
from faafo.messaging.messages import TaskMessage, bundle
from faafo.messaging.publisher import Publisher
from faafo.store import bands, idempotency
from faafo.store import fractals as store
from faafo.store.database import Database
from faafo.store.models import Fractal

if TYPE_CHECKING:
    from faafo.api.metrics import ApiMetrics

log = logging.getLogger(__name__)

KINDS = ("julia", "mandelbrot")


class InvalidTask(ValueError):
    """A task that passed the schema but breaks a configured limit."""


@dataclass
class Services:
    """Everything a request handler needs, built once per process by the app factory."""

    settings: ApiSettings
    database: Database
    publisher: Publisher
    metrics: ApiMetrics | None = None

    # -- creating -----------------------------------------------------------

    def check_limits(self, tasks: list[dict]) -> None:
        from faafo.engine import KINDS as ENGINE_KINDS
        from faafo.engine import PALETTES
        from faafo.engine.spec import MAX_SIDE

        limits = self.settings
        if len(tasks) > limits.max_tasks_per_request:
            raise InvalidTask(
                f"{len(tasks)} tasks in one request; the limit is {limits.max_tasks_per_request}"
            )
        max_side = min(limits.max_side, MAX_SIDE)
        for index, task in enumerate(tasks):
            where = f"task {index}: " if len(tasks) > 1 else ""
            pixels = task["width"] * task["height"]
            if pixels > limits.max_pixels:
                raise InvalidTask(
                    f"{where}{task['width']}x{task['height']} is {pixels} pixels; "
                    f"the limit is {limits.max_pixels}"
                )
            # Within the pixel limit, a very wide (or tall) image still costs the worker
            # memory in proportion to its side: 10**8 x 1 would need gigabytes per row.
            for side in ("width", "height"):
                if task[side] > max_side:
                    raise InvalidTask(
                        f"{where}{side} {task[side]} exceeds the largest side, {max_side} pixels"
                    )
            if task["iterations"] > limits.max_iterations:
                raise InvalidTask(
                    f"{where}iterations {task['iterations']} exceeds the limit "
                    f"{limits.max_iterations}"
                )
            if task["kind"] not in ENGINE_KINDS:
                raise InvalidTask(f"{where}kind must be one of {', '.join(ENGINE_KINDS)}")
            if task["palette"] not in PALETTES:
                raise InvalidTask(f"{where}palette must be one of {', '.join(PALETTES)}")

    def create(
        self, tasks: list[dict], request: idempotency.Request | None = None
    ) -> list[Fractal]:
        """Store tasks as queued, commit, then publish them (bundled when small).

        An existing uuid is a conflict (:class:`DuplicateTask`, 409), also when
        another API process inserts it at the same moment. With ``request`` (the
        ``Idempotency-Key`` and body of the HTTP request), a retry of an earlier
        request gets the tasks that one created, publishing nothing again.
        """
        self.check_limits(tasks)
        if request is not None:
            replay = self._replay(request)
            if replay is not None:
                return replay
        rows = []
        for task in tasks:
            row = dict(task)
            row["uuid"] = row.get("uuid") or str(uuidlib.uuid4())
            if row["kind"] == "julia" and row.get("c_real") is None and row.get("seed") is None:
                # A seed chosen here makes c the same wherever (and however often)
                # the task is rendered: every tile and every retry agree.
                row["seed"] = secrets.randbits(48)  # exact in JSON clients (< 2**53)
            rows.append(row)
        uuids = [row["uuid"] for row in rows]
        now = store.utcnow()
        try:
            with self.database.session() as session:
                store.insert_tasks(session, rows, now)
                if request is not None:
                    idempotency.remember(session, request, uuids, now)
                for row in rows:
                    if row["width"] * row["height"] * row["iterations"] > self.settings.band_cost:
                        from faafo.engine import plan_bands

                        planned = plan_bands(
                            row["width"], row["height"], row["iterations"], self.settings.band_cost
                        )
                        bands.split(session, row["uuid"], planned)
        except IntegrityError:
            # Another API process inserted one of these uuids (or this very key)
            # between our check and our insert: the same answers as without the race.
            replay = self._replay(request) if request is not None else None
            if replay is not None:
                return replay
            with self.database.reading() as session:
                taken = store.existing_uuids(session, uuids)
            raise store.DuplicateTask(taken or uuids) from None
        with self.database.reading() as session:
            created = store.get_many(session, uuids)
        if self.settings.test_delay_before_publish:
            time.sleep(self.settings.test_delay_before_publish)
        order = {uuid: i for i, uuid in enumerate(uuids)}
        created.sort(key=lambda row: order[row.uuid])
        self.publish_rows(created)
        if self.metrics:
            self.metrics.created.inc(len(created))
        for row in created:
            with logs.task_context(row.uuid):
                log.info(
                    "task created: %dx%d, %d iterations%s",
                    row.width,
                    row.height,
                    row.iterations,
                    f", {row.band_count} bands" if row.band_count else "",
                )
        return created

    def _replay(self, request: idempotency.Request) -> list[Fractal] | None:
        """The tasks an earlier request with the same key created, or None if it is new."""
        with self.database.reading() as session:
            uuids = idempotency.earlier(session, request)
            if uuids is None:
                return None
            found = {row.uuid: row for row in store.get_many(session, uuids)}
        gone = [uuid for uuid in uuids if uuid not in found]
        if gone:
            raise idempotency.ReplayGone(gone)
        log.info("a retried create request: answering with its %d task(s)", len(uuids))
        return [found[uuid] for uuid in uuids]

    def _messages_of(self, rows: list[Fractal]) -> list[TaskMessage]:
        """One message per task; per missing band of a banded task, or its assembly."""
        messages: list[TaskMessage] = []
        for row in rows:
            message = _message_of(row)
            if not row.band_count:
                messages.append(message)
                continue
            with self.database.reading() as session:
                todo = bands.missing(session, row.uuid)
            if todo:
                messages += [replace(message, band=b.idx, y0=b.y0, y1=b.y1) for b in todo]
            else:
                messages.append(replace(message, assemble=row.band_count))
        return messages

    def publish_assembly(self, uuid: str) -> bool:
        """Every band is stored: ask one worker to assemble them (only once).

        Returns whether this call published it. A failed publish is undone, so
        the reconciler (``bands.unassembled``) publishes it later.
        """
        with self.database.session() as session:
            if not bands.mark_assembly_published(session, uuid, store.utcnow()):
                return False
            row = store.get(session, uuid)
        if row is None:
            return False
        message = replace(_message_of(row), assemble=row.band_count)
        try:
            self.publisher.publish([[message]])
        except Exception:
            log.exception("could not publish the assembly of %s; the reconciler will retry", uuid)
            with self.database.session() as session:
                bands.unmark_assembly_published(session, uuid)
            return False
        return True

    def publish_rows(self, rows: list[Fractal]) -> bool:
        """Publish and mark published; on failure leave them for the reconciler.

        Each task records the id of the message that carries it (its
        ``publish_group``): the reconciler counts them to tell a busy queue from
        one that lost messages.
        """
        if not rows:
            return True
        messages = self._messages_of(rows)
        groups = list(bundle(messages, self.settings.bundle_cost, self.settings.max_bundle_tasks))
        try:
            self.publisher.publish(groups)
        except Exception:
            log.exception("could not publish %d task(s); the reconciler will retry", len(rows))
            return False
        carried_by: dict[str, str] = {}
        for group in groups:
            message_id = uuidlib.uuid4().hex
            for message in group:
                carried_by[message.uuid] = message_id
        assembled = [m.uuid for m in messages if m.assemble is not None]
        now = store.utcnow()
        with self.database.session() as session:
            store.mark_published(session, carried_by, now)
            bands.mark_assembly_sent(session, assembled, now)
        return True

    # -- reconciling --------------------------------------------------------

    def reconcile(self, limit: int = 1000) -> int:
        """Re-publish tasks that lost their message or their worker; returns how many.

        Three rules, each safe to run on every API process at once: tasks never
        published (or whose lease expired) are published after the grace period;
        published tasks are republished only as far as the queue holds fewer
        messages than they need (``store.lost_messages``); banded fractals whose
        bands are all stored get their assembly published. Expired
        ``Idempotency-Key`` records are dropped on the way.
        """
        now = store.utcnow()
        with self.database.session() as session:
            expired = store.requeue_expired(session, now)
            idempotency.forget_expired(session, now)
        if expired:
            log.warning("%d task(s) passed their lease; queued again", expired)
        with self.database.reading() as session:
            assemblies = bands.unassembled(session, limit)
        assembled = sum(self.publish_assembly(uuid) for uuid in assemblies)
        if assembled:
            log.warning("published the assembly of %d fractal(s) left without one", assembled)
        try:
            ready = self.publisher.queue_depth()
        except Exception:
            log.warning("queue unreachable; reconciling later")
            return assembled
        grace = timedelta(seconds=self.settings.publish_grace_seconds)
        with self.database.reading() as session:
            due = store.unpublished(session, now, grace, limit)
            lost = store.lost_messages(session, now, grace, ready, limit - len(due))
        if lost:
            log.warning(
                "the queue holds fewer messages than the queued tasks need; "
                "republishing %d task(s)",
                len(lost),
            )
        due += lost  # disjoint: those were never published, these were
        if due and self.publish_rows(due):
            log.info("re-published %d task(s)", len(due))
            if self.metrics:
                self.metrics.republished.inc(len(due))
            return len(due) + assembled
        return assembled

    # -- workers ------------------------------------------------------------

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)


def _message_of(row: Fractal) -> TaskMessage:
    return TaskMessage(
        uuid=row.uuid,
        width=row.width,
        height=row.height,
        iterations=row.iterations,
        xa=row.xa,
        xb=row.xb,
        ya=row.ya,
        yb=row.yb,
        kind=row.kind or "julia",
        palette=row.palette or "faafo",
        c_real=row.c_real,
        c_imag=row.c_imag,
        seed=row.seed,
    )
