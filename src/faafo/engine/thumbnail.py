"""Gallery thumbnails: box-filtered, built strip by strip, identical however the strips fall.

Each thumbnail pixel is the rounded mean of the source pixels that map onto it (source
column ``x`` belongs to thumbnail column ``x * tw // W``, rows alike). Sums are exact
integers, so the thumbnail of a whole render and the one assembled from bands that
different workers rendered are the same, byte for byte.
"""

from __future__ import annotations

import numpy as np

from faafo.engine import png
from faafo.engine.spec import MAX_SIDE as SPEC_MAX_SIDE
from faafo.engine.spec import _int as checked_int

MAX_SIDE = 256


def thumbnail_size(width: int, height: int) -> tuple[int, int]:
    """At most ``MAX_SIDE`` on the longest side, aspect kept, never enlarged."""
    longest = max(width, height)
    if longest <= MAX_SIDE:
        return width, height
    tw = max(1, (width * MAX_SIDE + longest // 2) // longest)
    th = max(1, (height * MAX_SIDE + longest // 2) // longest)
    return tw, th


class Thumbnailer:
    """Accumulates RGB strips (top to bottom) of a width x height image into a thumbnail."""

    def __init__(self, width: int, height: int) -> None:
        # Checked before the per-column arrays are allocated: the bands' assembly builds
        # one from a message's sizes, not from a validated FractalSpec.
        width = checked_int("width", width, 1, SPEC_MAX_SIDE)
        height = checked_int("height", height, 1, SPEC_MAX_SIDE)
        self.width = width
        self.height = height
        self.tw, self.th = thumbnail_size(width, height)
        self._box_of_column = np.arange(width, dtype=np.int64) * self.tw // width
        col_sizes = np.bincount(self._box_of_column, minlength=self.tw)
        row_sizes = np.bincount(
            np.arange(height, dtype=np.int64) * self.th // height, minlength=self.th
        )
        self._area = (row_sizes[:, None] * col_sizes[None, :])[:, :, None].astype(np.uint64)
        self._sums = np.zeros((self.th, self.tw, 3), np.uint64)
        self.rows = 0

    def add(self, rgb: np.ndarray) -> None:
        """Adds the next ``rows`` rows (shape (rows, width, 3), uint8)."""
        rows = rgb.shape[0]
        if rows == 0:
            return
        if rgb.shape[1:] != (self.width, 3) or self.rows + rows > self.height:
            raise ValueError("strip does not fit the image")
        from faafo.engine.boxsum import add_box_sums

        add_box_sums(
            np.ascontiguousarray(rgb),
            self.rows,
            self.height,
            self.th,
            self._box_of_column,
            self._sums,
        )
        self.rows += rows

    def pixels(self) -> np.ndarray:
        """The thumbnail (th, tw, 3) uint8; all rows must have been added."""
        if self.rows != self.height:
            raise ValueError(f"thumbnail got {self.rows} rows, expected {self.height}")
        area = self._area
        return ((self._sums + area // 2) // area).astype(np.uint8)

    def png(self) -> bytes:
        """The thumbnail as PNG bytes."""
        return png.encode(self.pixels())
