"""Prometheus metrics of one worker process, served on ``--metrics-port``."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class WorkerMetrics:
    def __init__(self, worker: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.render_seconds = Histogram(
            "faafo_render_seconds",
            "Escape-count time per task or band",
            ["kind"],
            registry=r,
            buckets=_TIME_BUCKETS,
        )
        self.encode_seconds = Histogram(
            "faafo_encode_seconds",
            "Colour and PNG encoding time per task or band",
            ["kind"],
            registry=r,
            buckets=_TIME_BUCKETS,
        )
        self.tasks = Counter(
            "faafo_worker_tasks",
            "Tasks handled, by outcome (rendered, skipped, failed)",
            ["worker", "outcome"],
            registry=r,
        )
        self.messages = Counter(
            "faafo_worker_messages",
            "Messages settled: ack, requeue, dead, split",
            ["outcome"],
            registry=r,
        )
        self.redeliveries = Counter(
            "faafo_worker_redeliveries", "Messages received that were delivered before", registry=r
        )
        self.upload_seconds = Histogram(
            "faafo_upload_seconds",
            "Time to deliver results to the API",
            registry=r,
            buckets=_TIME_BUCKETS,
        )
        self.upload_failures = Counter(
            "faafo_upload_failures", "Deliveries the API did not confirm in time", registry=r
        )
        self.busy_slots = Gauge("faafo_worker_busy_slots", "Slots rendering now", registry=r)
        self.worker = worker

    def serve(self, port: int, address: str = "0.0.0.0") -> bool:
        """Expose ``/metrics`` on ``port`` from a background thread; False if it cannot.

        A port already taken (a second worker on a host whose configuration
        names the port, as install.sh's does) costs the metrics, not the
        renders: the worker logs why and carries on without them.
        """
        try:
            start_http_server(port, addr=address, registry=self.registry)
        except OSError as error:
            log.warning("metrics not served on %s:%d: %s", address, port, error)
            return False
        return True
