"""Rendering a spec to PNG: whole images, horizontal bands, or straight to a file.

Everything goes through one strip pipeline (escape counts -> colours -> filtered, deflated
scanlines), so memory stays bounded by the strip size whatever the image size, and a
band rendered on its own has exactly the pixels of the same rows of the whole image.
The numba kernels are imported on first use, so importing ``faafo.engine`` (to read
``FractalSpec``, ``KINDS``, ``PALETTES`` or to assemble bands) does not load numba.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from faafo.engine import png
from faafo.engine.constant import resolve_c
from faafo.engine.spec import FractalSpec
from faafo.engine.thumbnail import Thumbnailer

# Pixels per strip: ~60 MB of working arrays whatever the image size.
STRIP_PIXELS = 1 << 22


@dataclass(frozen=True)
class RenderResult:
    """A rendered PNG with what the render used and where the time went."""

    png: bytes
    c: complex | None
    render_seconds: float
    colour_seconds: float
    encode_seconds: float
    thumbnail_png: bytes | None
    thumbnail_seconds: float = 0.0


@dataclass(frozen=True)
class WriteResult:
    """What ``write_png`` wrote: size and SHA-256 of the file's bytes, timings, thumbnail."""

    size: int
    sha256: str
    c: complex | None
    render_seconds: float
    colour_seconds: float
    encode_seconds: float
    thumbnail_png: bytes
    thumbnail_seconds: float = 0.0


@dataclass
class _Clock:
    render: float = 0.0
    colour: float = 0.0
    encode: float = 0.0
    thumbnail: float = 0.0


def strip_rows(width: int, band_rows: int | None = None) -> int:
    """Rows per strip: ``band_rows`` if given, else about ``STRIP_PIXELS`` pixels."""
    if band_rows is not None:
        if isinstance(band_rows, bool) or not isinstance(band_rows, int) or band_rows < 1:
            raise ValueError(f"band_rows must be a positive integer, got {band_rows!r}")
        return band_rows
    return max(1, STRIP_PIXELS // width)


def _check_threads(threads: int | None) -> None:
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")


def _pipeline(
    spec: FractalSpec,
    c: complex | None,
    y0: int,
    y1: int,
    threads: int | None,
    rows_per_strip: int,
    clock: _Clock,
    thumb: Thumbnailer | None,
    emit: Callable[[bytes], None],
) -> None:
    """Renders rows y0..y1-1 strip by strip, handing PNG bytes to ``emit`` as they come."""
    from faafo.engine.colour import colourise, is_smooth
    from faafo.engine.kernel import escape_counts

    smooth = is_smooth(spec.palette)
    stream = png.PngStream(spec.width, y1 - y0)
    emit(stream.start())
    for top in range(y0, y1, rows_per_strip):
        bottom = min(top + rows_per_strip, y1)
        t0 = time.perf_counter()
        counts, mu = escape_counts(
            spec.width,
            spec.height,
            spec.iterations,
            spec.xa,
            spec.xb,
            spec.ya,
            spec.yb,
            c,
            top,
            bottom,
            smooth=smooth,
            threads=threads,
        )
        t1 = time.perf_counter()
        rgb = colourise(counts, mu, spec.palette)
        del counts, mu
        t2 = time.perf_counter()
        data = stream.add(rgb)
        if data:
            emit(data)
        t3 = time.perf_counter()
        if thumb is not None:
            thumb.add(rgb)
        t4 = time.perf_counter()
        clock.render += t1 - t0
        clock.colour += t2 - t1
        clock.encode += t3 - t2
        clock.thumbnail += t4 - t3
    t0 = time.perf_counter()
    emit(stream.finish())
    clock.encode += time.perf_counter() - t0


def render_png(
    spec: FractalSpec, *, rows: tuple[int, int] | None = None, threads: int | None = None
) -> RenderResult:
    """Renders ``spec`` (or only its rows ``y0..y1-1`` when ``rows=(y0, y1)``) to PNG bytes.

    A band has the full image's coordinates: its pixels are exactly those rows of the
    whole render, so bands from different workers can be joined with ``assemble_png``.
    A band of a Julia set needs a reproducible constant: set ``spec.c`` (best: the
    ``resolve_c(spec)`` of the whole task) or ``spec.seed``. ``threads`` caps the worker
    threads (None: all CPUs this process may use); small images use one.
    The thumbnail (None for bands) is at most 256 pixels on its longest side.
    """
    _check_threads(threads)
    if rows is None:
        y0, y1 = 0, spec.height
    else:
        y0, y1 = rows
        if not (isinstance(y0, int) and isinstance(y1, int) and 0 <= y0 < y1 <= spec.height):
            raise ValueError(f"rows must satisfy 0 <= y0 < y1 <= {spec.height}, got {rows!r}")
        if spec.kind == "julia" and spec.c is None and spec.seed is None:
            raise ValueError(
                "rendering a band of a Julia set needs spec.c or spec.seed, "
                "or each band would get a different random constant"
            )
    c = resolve_c(spec)
    clock = _Clock()
    thumb = Thumbnailer(spec.width, spec.height) if rows is None else None
    parts: list[bytes] = []
    _pipeline(spec, c, y0, y1, threads, strip_rows(spec.width), clock, thumb, parts.append)
    thumbnail_png = None
    if thumb is not None:
        t0 = time.perf_counter()
        thumbnail_png = thumb.png()
        clock.thumbnail += time.perf_counter() - t0
    return RenderResult(
        png=b"".join(parts),
        c=c,
        render_seconds=clock.render,
        colour_seconds=clock.colour,
        encode_seconds=clock.encode,
        thumbnail_png=thumbnail_png,
        thumbnail_seconds=clock.thumbnail,
    )


def write_png(
    spec: FractalSpec, out: BinaryIO, *, threads: int | None = None, band_rows: int | None = None
) -> WriteResult:
    """Renders ``spec`` straight into the binary file ``out``, strip by strip.

    Memory is bounded by one strip (``band_rows`` rows, default about 4 million
    pixels) whatever the image size: a 10000x10000 image stays well under 1 GiB.
    Returns the file's size and SHA-256 (computed on the way), ``c``, timings and the
    thumbnail.
    """
    _check_threads(threads)
    rows_per_strip = strip_rows(spec.width, band_rows)
    c = resolve_c(spec)
    clock = _Clock()
    thumb = Thumbnailer(spec.width, spec.height)
    digest = hashlib.sha256()
    size = 0

    def emit(data: bytes) -> None:
        nonlocal size
        out.write(data)
        digest.update(data)
        size += len(data)

    _pipeline(spec, c, 0, spec.height, threads, rows_per_strip, clock, thumb, emit)
    t0 = time.perf_counter()
    thumbnail_png = thumb.png()
    clock.thumbnail += time.perf_counter() - t0
    return WriteResult(
        size=size,
        sha256=digest.hexdigest(),
        c=c,
        render_seconds=clock.render,
        colour_seconds=clock.colour,
        encode_seconds=clock.encode,
        thumbnail_png=thumbnail_png,
        thumbnail_seconds=clock.thumbnail,
    )
