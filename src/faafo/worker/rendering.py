"""Turning task messages into PNG deliveries with the engine."""

from __future__ import annotations

import hashlib
import time

from faafo.engine import FractalSpec, render_png
from faafo.messaging.messages import TaskMessage
from faafo.worker.api_client import Delivery

THUMBNAIL_SIDE = 256


def spec_of(task: TaskMessage) -> FractalSpec:
    c = complex(task.c_real, task.c_imag) if task.c_real is not None else None
    return FractalSpec(
        width=task.width,
        height=task.height,
        iterations=task.iterations,
        xa=task.xa,
        xb=task.xb,
        ya=task.ya,
        yb=task.yb,
        kind=task.kind,
        palette=task.palette,
        c=c,
        seed=task.seed,
    )


def render(task: TaskMessage, threads: int | None) -> Delivery:
    """Render one task; ``duration`` is the wall time of render + colour + encode."""
    started = time.perf_counter()
    result = render_png(spec_of(task), threads=threads)
    duration = time.perf_counter() - started
    return Delivery(
        uuid=task.uuid,
        png=result.png,
        checksum=hashlib.sha256(result.png).hexdigest(),
        duration=duration,
        c=result.c,
        # An image that fits in a thumbnail is served as its own: don't send it twice.
        thumbnail=result.thumbnail_png if max(task.width, task.height) > THUMBNAIL_SIDE else None,
    )
