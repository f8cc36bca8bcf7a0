"""The scaling decision, as a pure function of what was observed and when.

The signal is the backlog (queued and running tasks, and their cost in
pixel-iterations), as KEDA does for queue consumers: CPU load says nothing
about a queue-fed worker, which is always busy. Growing is quick (a short
cooldown); shrinking waits until the backlog has stayed low for a longer
cooldown, and only below a lower watermark than the one that made it grow
(hysteresis), so a steady trickle never makes the pool flap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Observation:
    tasks: int  # queued + running
    cost: int  # their pixel-iterations
    workers: int  # the pool now
    now: float  # seconds, monotonic


@dataclass(frozen=True)
class Decision:
    workers: int
    reason: str

    def changes(self, current: int) -> bool:
        return self.workers != current


@dataclass
class Policy:
    minimum: int = 1
    maximum: int = 4
    tasks_per_worker: float = 50.0
    cost_per_worker: float = 2e9
    up_cooldown: float = 5.0
    down_cooldown: float = 30.0
    low_watermark: float = 0.5  # shrink only when the load per worker is below this share
    _last_change: float = field(default=-math.inf, init=False)
    _low_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum:
            raise ValueError("need 0 <= minimum <= maximum")
        if self.tasks_per_worker <= 0 or self.cost_per_worker <= 0:
            raise ValueError("targets per worker must be positive")

    def wanted(self, tasks: int, cost: int) -> int:
        """Workers the backlog asks for, before bounds and damping."""
        return max(math.ceil(tasks / self.tasks_per_worker), math.ceil(cost / self.cost_per_worker))

    def _clamp(self, n: int) -> int:
        return max(self.minimum, min(self.maximum, n))

    def decide(self, seen: Observation) -> Decision:
        current = seen.workers
        wanted = self._clamp(self.wanted(seen.tasks, seen.cost))
        load = f"{seen.tasks} task(s), {seen.cost:.3g} pixel-iterations"
        if current < self.minimum or current > self.maximum:
            return self._change(
                seen, self._clamp(current), f"bounds {self.minimum}..{self.maximum}"
            )
        if wanted > current:
            self._low_since = None
            if seen.now - self._last_change < self.up_cooldown:
                return Decision(current, f"backlog asks for {wanted}, cooling down ({load})")
            return self._change(seen, wanted, f"backlog of {load} needs {wanted}")
        # Would a smaller pool still be under the low watermark? Otherwise hold.
        shrink_to = self._clamp(
            max(
                math.ceil(seen.tasks / (self.tasks_per_worker * self.low_watermark)),
                math.ceil(seen.cost / (self.cost_per_worker * self.low_watermark)),
            )
        )
        if shrink_to >= current:
            self._low_since = None
            return Decision(current, f"steady ({load})")
        if self._low_since is None:
            self._low_since = seen.now
        waited = seen.now - self._low_since
        if waited < self.down_cooldown or seen.now - self._last_change < self.down_cooldown:
            return Decision(current, f"low backlog for {waited:.0f}s, waiting ({load})")
        self._low_since = None
        return self._change(seen, shrink_to, f"backlog low for {waited:.0f}s ({load})")

    def _change(self, seen: Observation, workers: int, reason: str) -> Decision:
        self._last_change = seen.now
        return Decision(workers, reason)
