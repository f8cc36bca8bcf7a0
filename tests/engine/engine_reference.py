"""A deliberately slow, obviously correct renderer: the reference algorithm, line by line.

Plain Python ``complex`` arithmetic exactly as the original worker wrote it, with the
engine's documented definitions for what crashed the original: a side of 1 pixel
samples ``xa`` / ``ya`` (divisor 1), ``iterations == 0`` gives count 0, and an
``OverflowError`` from ``abs()`` counts as escaped.
"""

from __future__ import annotations


def escape_count(z: complex, c: complex, iterations: int) -> int:
    i = 0
    for i in range(iterations):  # noqa: B007
        try:
            if abs(z) > 2.0:
                break
        except OverflowError:
            break
        z = z * z + c
    return i


def point(x: int, y: int, width: int, height: int,
          xa: float, xb: float, ya: float, yb: float) -> complex:
    zy = y * (yb - ya) / max(height - 1, 1) + ya
    zx = x * (xb - xa) / max(width - 1, 1) + xa
    return zx + zy * 1j


def count_at(x: int, y: int, width: int, height: int, iterations: int,
             xa: float, xb: float, ya: float, yb: float, c: complex | None) -> int:
    p = point(x, y, width, height, xa, xb, ya, yb)
    if c is None:  # Mandelbrot: z starts at 0, c is the pixel
        return escape_count(0j, p, iterations)
    return escape_count(p, c, iterations)


def counts_row(y: int, width: int, height: int, iterations: int,
               xa: float, xb: float, ya: float, yb: float, c: complex | None) -> list[int]:
    return [count_at(x, y, width, height, iterations, xa, xb, ya, yb, c) for x in range(width)]


def counts(width: int, height: int, iterations: int, xa: float, xb: float,
           ya: float, yb: float, c: complex | None) -> list[list[int]]:
    return [counts_row(y, width, height, iterations, xa, xb, ya, yb, c) for y in range(height)]


def faafo_colour(i: int) -> tuple[int, int, int]:
    return (i % 8 * 32, i % 16 * 16, i % 32 * 8)
