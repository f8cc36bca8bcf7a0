"""The scaling decision: grows fast on a backlog, shrinks slowly, never flaps."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faafo.autoscale.policy import Observation, Policy


def run(
    policy: Policy, loads: list[tuple[int, int]], step: float = 1.0, start: int = 1
) -> list[int]:
    workers, sizes = start, []
    for i, (tasks, cost) in enumerate(loads):
        workers = policy.decide(Observation(tasks, cost, workers, i * step)).workers
        sizes.append(workers)
    return sizes


def test_burst_grows_to_max_then_returns_to_min_after_cooldown():
    policy = Policy(minimum=1, maximum=4, tasks_per_worker=50, up_cooldown=5, down_cooldown=30)
    sizes = run(policy, [(300, 0)] * 10 + [(0, 0)] * 60)
    assert sizes[0] == 4, "a burst grows the pool at once"
    assert all(s == 4 for s in sizes[:39]), "no shrinking before the cooldown"
    assert sizes[-1] == 1


def test_cost_signal_alone_scales():
    policy = Policy(minimum=1, maximum=8, tasks_per_worker=1000, cost_per_worker=1e9)
    assert run(policy, [(3, int(5e9))])[0] == 5


def test_growth_respects_up_cooldown():
    policy = Policy(minimum=1, maximum=10, tasks_per_worker=10, up_cooldown=5)
    sizes = run(policy, [(20, 0), (40, 0), (60, 0), (60, 0), (60, 0), (60, 0), (60, 0)])
    assert sizes[:2] == [2, 2] and sizes[5] == 6


def test_bounds_are_enforced():
    policy = Policy(minimum=2, maximum=3)
    assert run(policy, [(0, 0)], start=0) == [2]
    assert run(Policy(minimum=2, maximum=3), [(10_000, 0)], start=7) == [3]
    with pytest.raises(ValueError):
        Policy(minimum=3, maximum=2)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(0, 400), st.integers(0, 10))
def test_steady_trickle_never_flaps(maximum, level, jitter):
    """Around any steady level, the pool changes at most once (growth), never back and forth."""
    policy = Policy(minimum=1, maximum=maximum, tasks_per_worker=50, down_cooldown=30)
    loads = [(max(0, level + (jitter if i % 2 else -jitter)), 0) for i in range(300)]
    sizes = run(policy, loads)
    changes = sum(1 for a, b in itertools.pairwise(sizes) if a != b)
    assert changes <= 1, sizes
