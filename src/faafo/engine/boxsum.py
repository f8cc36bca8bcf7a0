"""The compiled loop behind thumbnails: per-box sums of RGB pixels.

Kept apart from ``thumbnail`` so that numba is imported only when a thumbnail is made.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def add_box_sums(rgb, first_row, height, boxes_down, box_of_column, sums):
    """Adds each pixel of ``rgb`` (rows of the image from ``first_row`` on) to its box.

    Row ``y`` belongs to box row ``y * boxes_down // height``, column ``x`` to box column
    ``box_of_column[x]``; ``sums`` is (boxes_down, boxes_across, 3) uint64.
    """
    rows, width, _ = rgb.shape
    for r in range(rows):
        ty = (first_row + r) * boxes_down // height
        for x in range(width):
            tx = box_of_column[x]
            sums[ty, tx, 0] += rgb[r, x, 0]
            sums[ty, tx, 1] += rgb[r, x, 1]
            sums[ty, tx, 2] += rgb[r, x, 2]
