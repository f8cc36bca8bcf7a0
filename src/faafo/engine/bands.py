"""Splitting one huge image into bands for several workers, and joining their PNGs.

A band is a run of whole rows rendered with the full image's coordinates
(``render_png(spec, rows=(y0, y1))``), so the joined image is pixel-identical to a
whole render. Joining streams: one band is decoded at a time and the output PNG is
produced chunk by chunk, so memory does not grow with the image.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image

from faafo.engine import png
from faafo.engine.thumbnail import Thumbnailer


def plan_bands(width: int, height: int, iterations: int, max_cost: int) -> list[tuple[int, int]]:
    """Row ranges ``(y0, y1)`` covering the image, each costing at most ``max_cost``.

    The cost of a band is its worst case, ``width * rows * iterations`` pixel-iterations
    (``iterations`` 0 counts as 1). Bands get equal row counts (differing by at most
    one), and always at least one row: a single row costing more than ``max_cost`` is a
    band of its own.
    """
    for name, value in (("width", width), ("height", height), ("max_cost", max_cost)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    row_cost = width * max(iterations, 1)
    rows_per_band = max(1, max_cost // row_cost)
    count = -(-height // rows_per_band)
    base, extra = divmod(height, count)
    bands = []
    y = 0
    for i in range(count):
        rows = base + (1 if i < extra else 0)
        bands.append((y, y + rows))
        y += rows
    return bands


def decode_band(data: bytes, width: int) -> np.ndarray:
    """The RGB pixels (rows, width, 3) of one band PNG; ValueError if it is not one."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG" or image.mode != "RGB" or image.width != width:
                raise ValueError(
                    f"band is a {image.format} {image.mode} image "
                    f"{image.width} wide, expected an RGB PNG {width} wide"
                )
            return np.asarray(image)
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"band is not a readable PNG: {error}") from error


def _band_pixels(width: int, band_pngs: Iterable[bytes]) -> Iterator[np.ndarray]:
    for data in band_pngs:
        yield decode_band(data, width)


def assemble_png(width: int, height: int, band_pngs: Iterable[bytes]) -> Iterator[bytes]:
    """Streams the PNG of the whole image from its band PNGs, given top to bottom.

    Yields bytes chunks (write or send them in order). One band is decoded at a time.
    Raises ValueError, at the latest when the input ends, if the bands are not RGB
    PNGs ``width`` pixels wide whose rows add up to ``height``.
    """
    return png.stream_strips(width, height, _band_pixels(width, band_pngs))


def assemble_thumbnail(width: int, height: int, band_pngs: Iterable[bytes]) -> bytes:
    """The gallery thumbnail of the whole image, from its band PNGs top to bottom.

    Identical to the ``thumbnail_png`` of a whole ``render_png``.
    """
    thumb = Thumbnailer(width, height)
    for pixels in _band_pixels(width, band_pngs):
        thumb.add(pixels)
    return thumb.png()


@dataclass(frozen=True)
class AssembledPng:
    """What ``write_assembled_png`` wrote."""

    size: int
    sha256: str
    thumbnail_png: bytes


def write_assembled_png(
    width: int, height: int, band_pngs: Iterable[bytes], out: BinaryIO
) -> AssembledPng:
    """``assemble_png`` and ``assemble_thumbnail`` in one pass over the bands.

    Writes the whole image's PNG to ``out`` and returns its size, SHA-256 and thumbnail,
    decoding each band once.
    """
    thumb = Thumbnailer(width, height)
    digest = hashlib.sha256()
    size = 0

    def strips() -> Iterator[np.ndarray]:
        for pixels in _band_pixels(width, band_pngs):
            thumb.add(pixels)
            yield pixels

    for data in png.stream_strips(width, height, strips()):
        out.write(data)
        digest.update(data)
        size += len(data)
    return AssembledPng(size=size, sha256=digest.hexdigest(), thumbnail_png=thumb.png())
