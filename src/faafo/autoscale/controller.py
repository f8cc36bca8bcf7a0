"""The autoscaling loop: observe the backlog, decide, apply, log why, export a metric."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from faafo.autoscale.backends import Backend
from faafo.autoscale.policy import Decision, Observation, Policy

log = logging.getLogger(__name__)


class AutoscaleMetrics:
    """The controller's own registry, served by ``--metrics-port`` (separate from any API's)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.workers = Gauge(
            "faafo_autoscale_workers", "Workers in the pool", registry=self.registry
        )
        self.wanted = Gauge(
            "faafo_autoscale_wanted_workers", "Workers the backlog asks for", registry=self.registry
        )
        self.decisions = Counter(
            "faafo_autoscale_decisions",
            "Pool changes, by direction",
            ["direction"],
            registry=self.registry,
        )
        self.errors = Counter(
            "faafo_autoscale_errors",
            "Observations or resizes that failed, by stage",
            ["stage"],
            registry=self.registry,
        )


class Autoscaler:
    """Observe, decide, apply: a failure at any stage is logged and counted, never fatal."""

    def __init__(
        self,
        policy: Policy,
        backend: Backend,
        backlog: Callable[[], tuple[int, int]],
        *,
        interval: float = 2.0,
        metrics: AutoscaleMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.backend = backend
        self._backlog = backlog
        self.interval = interval
        self.metrics = metrics or AutoscaleMetrics()
        self._clock = clock
        self.history: list[tuple[float, int, str]] = []

    def step(self) -> Decision | None:
        """One observation and, if needed, one change of the pool."""
        try:
            tasks, cost = self._backlog()
        except Exception as error:  # the API may be restarting: keep the pool as it is
            log.warning("autoscale: backlog unavailable (%s); keeping the pool", error)
            self.metrics.errors.labels("backlog").inc()
            return None
        try:
            current = self.backend.current()
        except Exception as error:  # a cloud API hiccup must not end the controller
            log.warning("autoscale: cannot read the pool's size (%s); trying again", error)
            self.metrics.errors.labels("size").inc()
            return None
        decision = self.policy.decide(Observation(tasks, cost, current, self._clock()))
        self.metrics.wanted.set(self.policy.wanted(tasks, cost))
        if decision.changes(current):
            direction = "up" if decision.workers > current else "down"
            log.info("autoscale: %d -> %d workers: %s", current, decision.workers, decision.reason)
            try:
                self.backend.resize(decision.workers)
            except Exception as error:
                # The policy counts the attempt as a change, so its cooldown paces the
                # retries: a refusing back end is asked again after a cooldown, not in a loop.
                log.warning("autoscale: resizing to %d failed: %s", decision.workers, error)
                self.metrics.errors.labels("resize").inc()
            else:
                self.metrics.decisions.labels(direction).inc()
                self.history.append((self._clock(), decision.workers, decision.reason))
        else:
            log.debug("autoscale: %d workers: %s", current, decision.reason)
        try:
            self.metrics.workers.set(self.backend.current())
        except Exception:  # already logged above when it matters; the gauge keeps its value
            self.metrics.errors.labels("size").inc()
        return decision

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.interval)


def api_backlog(endpoint_url: str, token: str | None = None) -> Callable[[], tuple[int, int]]:
    """The backlog as the API reports it in ``GET /v1/stats``."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=endpoint_url.rstrip("/"), timeout=10, headers=headers)

    def read() -> tuple[int, int]:
        response = client.get("/v1/stats")
        response.raise_for_status()
        backlog = response.json()["backlog"]
        return int(backlog["tasks"]), int(backlog["pixel_iterations"])

    return read
