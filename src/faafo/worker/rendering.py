"""Turning task messages into PNG deliveries with the engine."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from faafo.engine import FractalSpec, assemble_png, assemble_thumbnail, render_png, resolve_c
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
    """Render one task (or one band of it); ``duration`` is render + colour + encode time."""
    started = time.perf_counter()
    rows = (task.y0, task.y1) if task.band is not None else None
    result = render_png(spec_of(task), rows=rows, threads=threads)
    duration = time.perf_counter() - started
    return Delivery(
        uuid=task.uuid,
        png=result.png,
        checksum=hashlib.sha256(result.png).hexdigest(),
        duration=duration,
        c=result.c,
        # An image that fits in a thumbnail is served as its own: don't send it twice.
        thumbnail=result.thumbnail_png if max(task.width, task.height) > THUMBNAIL_SIDE else None,
        kind=task.kind,
        render_seconds=result.render_seconds,
        encode_seconds=result.colour_seconds + result.encode_seconds,
    )


def assemble(task: TaskMessage, fetch: Callable[[int], bytes], spool: Path) -> Delivery:
    """The final PNG of a banded task, from its bands, with bounded memory.

    Bands are fetched once into ``spool`` (files) and streamed from there twice:
    into the image and into its thumbnail.
    """
    assert task.assemble is not None
    started = time.perf_counter()
    paths = []
    for index in range(task.assemble):
        path = spool / f"band-{index}.png"
        path.write_bytes(fetch(index))
        paths.append(path)

    def band_pngs() -> Iterator[bytes]:
        for path in paths:
            yield path.read_bytes()

    digest = hashlib.sha256()
    parts = []
    for chunk in assemble_png(task.width, task.height, band_pngs()):
        digest.update(chunk)
        parts.append(chunk)
    thumbnail = assemble_thumbnail(task.width, task.height, band_pngs())
    png = b"".join(parts)
    return Delivery(
        uuid=task.uuid,
        png=png,
        checksum=digest.hexdigest(),
        duration=time.perf_counter() - started,
        c=resolve_c(spec_of(task)),
        thumbnail=thumbnail,
    )
