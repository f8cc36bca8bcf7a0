"""The original's ``faafo create`` defaults: every unset parameter is random per task."""

from __future__ import annotations

import random
from dataclasses import dataclass

# name -> (default minimum, default maximum), as in the original client
RANDOM_RANGES: dict[str, tuple[float, float]] = {
    "width": (256, 1024),
    "height": (256, 1024),
    "iterations": (128, 512),
    "xa": (-1.0, -4.0),
    "xb": (1.0, 4.0),
    "ya": (-0.5, -3.0),
    "yb": (0.5, 3.0),
}
INTEGER_PARAMETERS = ("width", "height", "iterations")


@dataclass
class TaskOptions:
    """Fixed values (None: random) and the bounds of the random ones."""

    fixed: dict[str, float | int | None]
    bounds: dict[str, tuple[float, float]]
    extra: dict[str, object]


def random_task(options: TaskOptions, rng: random.Random) -> dict[str, object]:
    task: dict[str, object] = {}
    for name in RANDOM_RANGES:
        value = options.fixed.get(name)
        if value is None:
            low, high = options.bounds[name]
            if name in INTEGER_PARAMETERS:
                value = rng.randint(int(min(low, high)), int(max(low, high)))
            else:
                value = rng.uniform(low, high)
        task[name] = value
    task.update({k: v for k, v in options.extra.items() if v is not None})
    return task
