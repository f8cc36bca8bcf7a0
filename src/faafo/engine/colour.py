"""Palettes: escape counts (or smooth escape values) to RGB pixels.

``faafo`` is the reference colouring, ``(i % 8 * 32, i % 16 * 16, i % 32 * 8)`` for
escape count ``i``; it depends on ``i % 32`` only, so it is a 32-entry table lookup.

The smooth palettes colour the renormalised escape value ``mu`` (continuous across
count boundaries, so no banding) through a cyclic colour gradient; points that never
escaped are black. The mapping is pointwise and does not depend on image statistics,
so bands rendered by different workers join without seams.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from faafo.engine.spec import PALETTES

# Smooth palettes: gradient stops (position in [0, 1), RGB); the gradient wraps around.
GRADIENTS: dict[str, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    "ultra": (  # deep blue, white, gold: the classic smooth fractal look
        (0.0, (0, 7, 100)),
        (0.16, (32, 107, 203)),
        (0.42, (237, 255, 255)),
        (0.6425, (255, 170, 0)),
        (0.8575, (0, 2, 0)),
    ),
    "fire": (
        (0.0, (10, 0, 0)),
        (0.25, (150, 10, 0)),
        (0.5, (255, 120, 0)),
        (0.7, (255, 230, 80)),
        (0.82, (255, 255, 230)),
        (0.92, (120, 40, 10)),
    ),
    "ocean": (
        (0.0, (2, 8, 36)),
        (0.3, (0, 90, 140)),
        (0.55, (40, 200, 190)),
        (0.72, (220, 250, 220)),
        (0.86, (30, 120, 130)),
    ),
}
GRADIENT_SIZE = 2048
# Gradient cycles per unit of sqrt(mu): slow near the set's outside, faster closer in.
CYCLES_PER_SQRT_MU = 0.14


@functools.cache
def faafo_table() -> np.ndarray:
    """The reference colours of ``i % 32``, shape (32, 3), uint8."""
    i = np.arange(32)
    return np.stack([i % 8 * 32, i % 16 * 16, i % 32 * 8], axis=1).astype(np.uint8)


@functools.cache
def gradient_table(name: str) -> np.ndarray:
    """A smooth palette sampled at ``GRADIENT_SIZE`` points, shape (N, 3), uint8."""
    stops = GRADIENTS[name]
    pos = np.array([p for p, _ in stops] + [1.0])
    rgb = np.array([c for _, c in stops] + [stops[0][1]], dtype=np.float64)
    t = np.arange(GRADIENT_SIZE) / GRADIENT_SIZE
    channels = [np.interp(t, pos, rgb[:, k]) for k in range(3)]
    return np.rint(np.stack(channels, axis=1)).clip(0, 255).astype(np.uint8)


def is_smooth(palette: str) -> bool:
    """Whether a palette needs the smooth escape values (all but the reference one)."""
    if palette not in PALETTES:
        raise ValueError(f"unknown palette {palette!r}; choose one of {', '.join(PALETTES)}")
    return palette != "faafo"


@njit(cache=True, nogil=True)
def _colour_counts(counts, table, out):
    rows, width = counts.shape
    for y in range(rows):
        for x in range(width):
            k = counts[y, x] & 31
            out[y, x, 0] = table[k, 0]
            out[y, x, 1] = table[k, 1]
            out[y, x, 2] = table[k, 2]


@njit(cache=True, nogil=True)
def _colour_smooth(mu, table, cycles, out):
    rows, width = mu.shape
    n = table.shape[0]
    for y in range(rows):
        for x in range(width):
            m = mu[y, x]
            if m < 0.0:
                out[y, x, 0] = 0
                out[y, x, 1] = 0
                out[y, x, 2] = 0
                continue
            t = np.sqrt(np.float64(m)) * cycles
            k = int((t - np.floor(t)) * n) % n
            out[y, x, 0] = table[k, 0]
            out[y, x, 1] = table[k, 1]
            out[y, x, 2] = table[k, 2]


def colourise(counts: np.ndarray, mu: np.ndarray | None, palette: str) -> np.ndarray:
    """RGB pixels (rows, width, 3) uint8 for a strip of escape counts / smooth values."""
    out = np.empty((*counts.shape, 3), np.uint8)
    if is_smooth(palette):
        if mu is None:
            raise ValueError(f"palette {palette!r} needs smooth escape values")
        _colour_smooth(mu, gradient_table(palette), CYCLES_PER_SQRT_MU, out)
    else:
        _colour_counts(counts, faafo_table(), out)
    return out
