"""The original's ``faafo create`` defaults: every unset parameter is random per task."""

from __future__ import annotations

import random
import uuid as uuidlib
from collections.abc import Iterator
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
# --min-tasks / --max-tasks defaults when --tasks is not given
TASK_COUNT_RANGE = (1, 10)


@dataclass
class TaskOptions:
    """Fixed values (None: random) and the bounds of the random ones."""

    fixed: dict[str, float | int | None]
    bounds: dict[str, tuple[float, float]]
    extra: dict[str, object]


def random_task(options: TaskOptions, rng: random.Random) -> dict[str, object]:
    """One task body: the fixed values, random ones (bounds in either order), the extras."""
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


def task_count(tasks: int | None, low: int, high: int, rng: random.Random) -> int:
    """``--tasks`` when given, else random between the two bounds (in either order)."""
    return tasks or rng.randint(min(low, high), max(low, high))


def task_chunks(
    options: TaskOptions, count: int, rng: random.Random, batch: str, size: int
) -> Iterator[list[dict[str, object]]]:
    """``count`` new task bodies of one batch, ``size`` a request, each with its own uuid.

    Built a chunk at a time, so a huge ``--tasks`` never holds every body at once.
    """
    for start in range(0, count, size):
        chunk = []
        for _ in range(min(size, count - start)):
            task = random_task(options, rng)
            task["uuid"] = str(uuidlib.uuid4())
            task["batch"] = batch
            chunk.append(task)
        yield chunk
