"""``GET /v1/stats``: what the system is doing now, for the gallery's live counters and people.

One JSON document, cheap enough to poll every couple of seconds: counts by
status, the queue's depth, the backlog, throughput over the last minute, and
per worker its recent tasks and when it was last seen. Prometheus metrics
(``/metrics``) are for machines; this is the same picture, shaped for a page.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from faafo.api import auth, deps
from faafo.api.services import Services
from faafo.store import fractals as store
from faafo.store import stats as queries

log = logging.getLogger(__name__)
router = APIRouter(tags=["stats"])
Svc = Annotated[Services, Depends(deps.services)]

THROUGHPUT_WINDOW = timedelta(seconds=60)


def _utc(moment: datetime | None) -> datetime | None:
    """The store keeps naive UTC; answers say so explicitly."""
    return moment.replace(tzinfo=UTC) if moment is not None else None


class RecentTask(BaseModel):
    uuid: str
    status: str = Field(description="queued, running, done or failed")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = Field(None, description="render time in seconds")


class WorkerStats(BaseModel):
    name: str = Field(description="the worker's name, as recorded in generated_by")
    running: int = Field(description="tasks it holds now")
    done: int = Field(description="tasks it finished, in all")
    failed: int = Field(description="tasks that failed in its hands, in all")
    done_last_minute: int
    last_seen: datetime | None = Field(
        None,
        description="latest claim, delivery or lease renewal among the running and the latest "
        "finished tasks; null when the worker has been idle for longer than those",
    )
    recent: list[RecentTask] = Field(description="its latest tasks, most recent first")


class Throughput(BaseModel):
    window_seconds: float
    done: int = Field(description="tasks finished within the window")
    failed: int = Field(description="tasks failed within the window")
    per_minute: float = Field(description="finished tasks per minute over the window")
    pixels_per_second: float


class Backlog(BaseModel):
    tasks: int = Field(description="queued and running tasks")
    pixel_iterations: int = Field(description="their cost: width x height x iterations")


class Stats(BaseModel):
    """A snapshot of the whole system."""

    counts: dict[str, int] = Field(description="tasks by status (queued, running, done, failed)")
    total: int
    queue_depth: int | None = Field(
        None, description="messages waiting on the task queue; null when the queue is unreachable"
    )
    backlog: Backlog
    throughput: Throughput
    workers: list[WorkerStats] = Field(description="most recently seen first")
    generated_at: datetime


def collect(services: Services, *, recent: int = 5, queue: bool = True) -> Stats:
    """Build the snapshot; the pages render their first paint from it too.

    Pages pass ``queue=False``: asking a broker that is down retries for a
    while, and a page must not wait for that (its script fills the depth in).
    """
    now = store.utcnow()
    with services.database.reading() as session:
        counts = queries.status_counts(session)
        backlog_tasks, backlog_cost = queries.backlog(session)
        seen = queries.activity(
            session, now, lease=services.lease, window=THROUGHPUT_WINDOW, recent_per_worker=recent
        )
    done, workers = seen.throughput, seen.workers
    depth: int | None = None
    if queue:
        try:
            depth = services.publisher.queue_depth()
        except Exception:  # stats stay useful while the queue is down
            log.warning("queue depth unavailable", exc_info=True)
    seconds = done.window.total_seconds()
    return Stats(
        counts=counts,
        total=sum(counts.values()),
        queue_depth=depth,
        backlog=Backlog(tasks=backlog_tasks, pixel_iterations=backlog_cost),
        throughput=Throughput(
            window_seconds=seconds,
            done=done.done,
            failed=done.failed,
            per_minute=round(done.done * 60 / seconds, 3),
            pixels_per_second=round(done.pixels / seconds, 1),
        ),
        workers=[
            WorkerStats(
                name=w.name,
                running=w.running,
                done=w.done,
                failed=w.failed,
                done_last_minute=w.done_recently,
                last_seen=_utc(w.last_seen),
                recent=[
                    RecentTask(
                        uuid=t.uuid,
                        status=t.status,
                        started_at=_utc(t.started_at),
                        finished_at=_utc(t.finished_at),
                        duration=t.duration,
                    )
                    for t in w.recent
                ],
            )
            for w in workers
        ],
        generated_at=_utc(now) or now,
    )


@router.get(
    "/v1/stats",
    response_model=Stats,
    summary="Counts by status, queue depth, throughput and per-worker activity",
    dependencies=[auth.RequireReader],
)
def get_stats(
    services: Svc,
    recent: Annotated[int, Query(ge=0, le=50, description="latest tasks listed per worker")] = 5,
) -> Stats:
    """A snapshot for dashboards and the gallery's live counters; poll it every few seconds."""
    return collect(services, recent=recent)
