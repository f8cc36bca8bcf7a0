"""Prometheus metrics of one API process, and the ``/metrics`` route.

Each API process keeps its own registry (no global state) and is scraped on
its own address, as Prometheus does with any replicated service: counters
(requests, results, failures) are per process and add up across instances;
task counts, queue depth and backlog are read from the database and the
queue at scrape time, so every instance reports the same truth.

``/metrics`` answers while the database or the queue is down (that is when
it matters), so "the process is up" says little: ``faafo_ready`` is 0 then,
exactly when ``/readyz`` answers 503, and alerts watch it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from faafo.api.auth import RequireReader
from faafo.store import fractals as store
from faafo.store.models import STATUSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StateCollector(Collector):
    """Tasks by status and per worker, queue depth, backlog and readiness, read when scraped."""

    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        self._services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        database_up = _reachable(self._services.database.ping)
        tasks = GaugeMetricFamily("faafo_tasks", "Tasks by status", labels=["status"])
        # Not "faafo_worker_tasks": workers export a counter family of that name.
        by_worker = GaugeMetricFamily(
            "faafo_tasks_done_by_worker",
            "Finished tasks by the worker that made them (from the database)",
            labels=["worker"],
        )
        backlog_tasks = GaugeMetricFamily("faafo_backlog_tasks", "Queued and running tasks")
        backlog_cost = GaugeMetricFamily(
            "faafo_backlog_pixel_iterations", "Cost of the queued and running tasks"
        )
        counts, workers, n, cost = None, {}, None, None
        if database_up:  # else the reads would only wait for the same timeout again
            try:
                with self._services.database.reading() as session:
                    counts = store.counts_by_status(session)
                    workers = store.done_by_worker(session)
                    n, cost = store.backlog(session)
            except Exception:  # a scrape must not fail because the database is down
                counts, workers, n, cost = None, {}, None, None
        if counts is not None:
            for status in STATUSES:
                tasks.add_metric([status], counts.get(status, 0))
            backlog_tasks.add_metric([], n)
            backlog_cost.add_metric([], cost)
        for worker, done in workers.items():
            by_worker.add_metric([worker or "unknown"], done)
        yield from (tasks, by_worker, backlog_tasks, backlog_cost)
        depth = GaugeMetricFamily("faafo_queue_depth", "Messages waiting on the task queue")
        queue_up = False
        with contextlib.suppress(Exception):  # the queue may be down: report what we can
            depth.add_metric([], self._services.publisher.queue_depth())
            queue_up = True
        yield depth
        up = GaugeMetricFamily(
            "faafo_dependency_up",
            "1 if this API process reaches the dependency (database, queue)",
            labels=["dependency"],
        )
        up.add_metric(["database"], int(database_up))
        up.add_metric(["queue"], int(queue_up))
        yield up
        yield GaugeMetricFamily(
            "faafo_ready",
            "1 if this API process can serve (database and queue reachable, as /readyz)",
            value=int(database_up and queue_up),
        )


def _reachable(probe: Callable[[], object]) -> bool:
    """Whether a probe of /readyz passes (the queue's probe is its depth, read above)."""
    try:
        probe()
    except Exception:  # any failure means "not reachable" here, as in /readyz
        return False
    return True


class ApiMetrics:
    def __init__(self, services) -> None:  # type: ignore[no-untyped-def]
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "faafo_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "faafo_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.created = Counter("faafo_tasks_created", "Tasks accepted", registry=r)
        self.completed = Counter(
            "faafo_tasks_completed", "Results stored, by worker", ["worker"], registry=r
        )
        self.duplicates = Counter(
            "faafo_results_duplicate", "Results delivered again and ignored", registry=r
        )
        self.failed = Counter(
            "faafo_tasks_failed", "Tasks failed, by reason", ["reason"], registry=r
        )
        self.redeliveries = Counter(
            "faafo_task_redeliveries", "Claims of a task already claimed before", registry=r
        )
        self.republished = Counter(
            "faafo_tasks_republished", "Tasks published again by the reconciler", registry=r
        )
        r.register(_StateCollector(services))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route_of(request: Request) -> str:
    """The route template (``/v1/fractal/{uuid}``), so labels stay few."""
    route = request.scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    for candidate in request.app.router.routes:
        match, _ = candidate.matches(request.scope)
        if match == Match.FULL and getattr(candidate, "path", None):
            return candidate.path
    return "unmatched"


def install(app: FastAPI, metrics: ApiMetrics) -> None:
    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_of(request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route, str(status)).observe(
                time.perf_counter() - started
            )

    router = APIRouter(include_in_schema=False)

    # With --private-reads the metrics need the client token too (they name workers and counts).
    @router.get("/metrics", dependencies=[RequireReader])
    async def _metrics() -> Response:
        return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE)

    app.include_router(router)
