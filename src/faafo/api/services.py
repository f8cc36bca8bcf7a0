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

from faafo import logs
from faafo.config import ApiSettings
from faafo.messaging.messages import TaskMessage, bundle
from faafo.messaging.publisher import Publisher
from faafo.store import bands
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

        limits = self.settings
        if len(tasks) > limits.max_tasks_per_request:
            raise InvalidTask(
                f"{len(tasks)} tasks in one request; the limit is {limits.max_tasks_per_request}"
            )
        for index, task in enumerate(tasks):
            where = f"task {index}: " if len(tasks) > 1 else ""
            pixels = task["width"] * task["height"]
            if pixels > limits.max_pixels:
                raise InvalidTask(
                    f"{where}{task['width']}x{task['height']} is {pixels} pixels; "
                    f"the limit is {limits.max_pixels}"
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

    def create(self, tasks: list[dict]) -> list[Fractal]:
        """Store tasks as queued, commit, then publish them (bundled when small)."""
        self.check_limits(tasks)
        rows = []
        server_seeded: set[str] = set()
        for task in tasks:
            row = dict(task)
            row["uuid"] = row.get("uuid") or str(uuidlib.uuid4())
            if row["kind"] == "julia" and row.get("c_real") is None and row.get("seed") is None:
                # A seed chosen here makes c the same wherever (and however often)
                # the task is rendered: every tile and every retry agree.
                row["seed"] = secrets.randbits(48)  # exact in JSON clients (< 2**53)
                server_seeded.add(row["uuid"])
            rows.append(row)
        now = store.utcnow()
        with self.database.session() as session:
            inserted = store.insert_tasks(session, rows, now, frozenset(server_seeded))
            for row in inserted:
                if row["width"] * row["height"] * row["iterations"] > self.settings.band_cost:
                    from faafo.engine import plan_bands

                    planned = plan_bands(
                        row["width"], row["height"], row["iterations"], self.settings.band_cost
                    )
                    bands.split(session, row["uuid"], planned)
        with self.database.reading() as session:
            created = store.get_many(session, [r["uuid"] for r in rows])
        if self.settings.test_delay_before_publish:
            time.sleep(self.settings.test_delay_before_publish)
        fresh = {row["uuid"] for row in inserted}
        # A replayed request publishes nothing new; the reconciler covers its tasks.
        self.publish_rows([row for row in created if row.uuid in fresh])
        if self.metrics:
            self.metrics.created.inc(len(fresh))
        for row in (r for r in created if r.uuid in fresh):
            with logs.task_context(row.uuid):
                log.info(
                    "task created: %dx%d, %d iterations%s",
                    row.width,
                    row.height,
                    row.iterations,
                    f", {row.band_count} bands" if row.band_count else "",
                )
        order = {r["uuid"]: i for i, r in enumerate(rows)}
        return sorted(created, key=lambda row: order[row.uuid])

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

    def publish_assembly(self, uuid: str) -> None:
        """Every band is stored: ask one worker to assemble them (only once)."""
        with self.database.session() as session:
            if not bands.mark_assembly_published(session, uuid, store.utcnow()):
                return
            row = store.get(session, uuid)
        if row is None:
            return
        message = replace(_message_of(row), assemble=row.band_count)
        try:
            self.publisher.publish([[message]])
        except Exception:
            log.exception("could not publish the assembly of %s; the reconciler will retry", uuid)

    def publish_rows(self, rows: list[Fractal]) -> bool:
        """Publish and mark published; on failure leave them for the reconciler."""
        messages = self._messages_of(rows)
        groups = list(bundle(messages, self.settings.bundle_cost, self.settings.max_bundle_tasks))
        try:
            self.publisher.publish(groups)
        except Exception:
            log.exception("could not publish %d task(s); the reconciler will retry", len(rows))
            return False
        with self.database.session() as session:
            store.mark_published(session, [row.uuid for row in rows], store.utcnow())
        return True

    # -- reconciling --------------------------------------------------------

    def reconcile(self, limit: int = 1000) -> int:
        """Re-publish tasks that lost their message or their worker; returns how many."""
        now = store.utcnow()
        with self.database.session() as session:
            expired = store.requeue_expired(session, now)
        if expired:
            log.warning("%d task(s) passed their lease; queued again", expired)
        try:
            queue_empty = self.publisher.queue_depth() == 0
        except Exception:
            log.warning("queue unreachable; reconciling later")
            return 0
        grace = timedelta(seconds=self.settings.publish_grace_seconds)
        with self.database.reading() as session:
            due = store.to_publish(session, now, grace, limit, queue_empty=queue_empty)
        if due and self.publish_rows(due):
            log.info("re-published %d task(s)", len(due))
            if self.metrics:
                self.metrics.republished.inc(len(due))
            return len(due)
        return 0

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
