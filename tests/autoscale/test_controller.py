"""The control loop survives its back end and its signal source failing."""

from __future__ import annotations

from faafo.autoscale.controller import Autoscaler
from faafo.autoscale.policy import Policy


class FlakyPool:
    """A pool whose resize fails the first ``failures`` times, as a cloud API may."""

    def __init__(self, failures: int) -> None:
        self.size = 1
        self.failures = failures
        self.calls = 0

    def current(self) -> int:
        return self.size

    def resize(self, workers: int) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("scaling signal refused: HTTP 503")
        self.size = workers


def _errors(scaler: Autoscaler, stage: str) -> float:
    return (
        scaler.metrics.registry.get_sample_value("faafo_autoscale_errors_total", {"stage": stage})
        or 0.0
    )


def test_a_refused_resize_is_counted_and_retried_after_the_cooldown() -> None:
    clock = [0.0]
    pool = FlakyPool(failures=1)
    policy = Policy(minimum=1, maximum=4, tasks_per_worker=10, up_cooldown=5)
    scaler = Autoscaler(policy, pool, lambda: (40, 0), clock=lambda: clock[0])

    scaler.step()  # refused: no exception escapes, the pool is unchanged
    assert pool.size == 1 and _errors(scaler, "resize") == 1
    clock[0] = 1.0
    scaler.step()  # within the cooldown: not asked again at once
    assert pool.calls == 1
    clock[0] = 6.0
    scaler.step()
    assert pool.size == 4 and pool.calls == 2
    assert (
        scaler.metrics.registry.get_sample_value(
            "faafo_autoscale_decisions_total", {"direction": "up"}
        )
        == 1
    )


def test_an_unreadable_backlog_keeps_the_pool() -> None:
    def backlog() -> tuple[int, int]:
        raise ConnectionError("API restarting")

    pool = FlakyPool(failures=0)
    scaler = Autoscaler(Policy(), pool, backlog)
    assert scaler.step() is None
    assert pool.calls == 0 and _errors(scaler, "backlog") == 1
