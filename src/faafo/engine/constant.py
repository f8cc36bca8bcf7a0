"""The Julia constant ``c``: the reference's random rule, made reproducible and bounded.

Reference rule: draw ``cx`` uniformly in ``[xa, xb]`` and ``cy`` in ``[ya, yb]``, iterate
``z = c`` with the pixel loop, and accept ``c`` when its escape count ``i`` satisfies
``10 < i < 100``. Such points lie near the Mandelbrot set's boundary, which is what makes
the Julia set interesting. Here the draws come from ``random.Random(seed)`` (fresh OS
entropy when ``seed`` is None), so a seed always gives the same ``c``, and the search
stops after ``MAX_TRIES`` draws instead of looping forever.

Fallback, when no draw is accepted (always the case for ``iterations <= 11``, where the
largest possible count is ``iterations - 1 <= 10``; also for windows far from the
Mandelbrot set, or degenerate windows whose single point fails): the first draw whose
escape count was nearest to the accepted range ``11..99``. So ``c`` always lies in the
window and is deterministic for a seed. With ``iterations == 0`` every count is 0 and the
fallback is the first draw.
"""

from __future__ import annotations

import math
import random

from faafo.engine.spec import FractalSpec

MAX_TRIES = 1000
ACCEPT_LOW = 10  # exclusive
ACCEPT_HIGH = 100  # exclusive


def escape_count(z: complex, c: complex, iterations: int) -> int:
    """The reference loop for one point: 0 when ``iterations`` is 0."""
    i = 0
    for i in range(iterations):  # noqa: B007 - the final i is the answer
        try:
            if abs(z) > 2.0:
                break
        except OverflowError:  # |z| beyond the float range: it has escaped
            break
        z = z * z + c
    return i


def _draw(rng: random.Random, lo: float, hi: float) -> float:
    v = rng.random() * (hi - lo) + lo
    if not math.isfinite(v):  # the span overflowed (|lo|, |hi| near the float maximum)
        r = rng.random()
        v = lo * (1.0 - r) + hi * r
    return v


def _gap(count: int) -> int:
    """How far an escape count is from the accepted range (0 = accepted)."""
    if count <= ACCEPT_LOW:
        return ACCEPT_LOW + 1 - count
    if count >= ACCEPT_HIGH:
        return count - ACCEPT_HIGH + 1
    return 0


def choose_c(
    xa: float, xb: float, ya: float, yb: float, iterations: int, seed: int | None
) -> complex:
    """A Julia constant chosen by the reference rule; see the module docstring.

    Deterministic for a given ``seed``; at most ``MAX_TRIES`` draws of at most 101
    iterations each, so it never hangs (well under a second in the worst case).
    """
    rng = random.Random(seed)
    # Counts of 100 and more are all rejected alike, so 101 iterations decide every draw.
    budget = min(iterations, ACCEPT_HIGH + 1)
    best_gap = math.inf
    best: complex | None = None
    single_point = xa == xb and ya == yb
    # The smallest gap any draw could reach: counts never exceed iterations - 1.
    floor_gap = _gap(max(iterations - 1, 0)) if iterations <= ACCEPT_LOW + 1 else 0
    for _ in range(1 if single_point else MAX_TRIES):
        cx = _draw(rng, xa, xb)
        cy = _draw(rng, ya, yb)
        c = cx + cy * 1j
        gap = _gap(escape_count(c, c, budget))
        if gap < best_gap:
            best_gap, best = gap, c
            if gap <= floor_gap:
                break
    assert best is not None
    return best


def resolve_c(spec: FractalSpec) -> complex | None:
    """The constant a render of ``spec`` uses: ``spec.c``, a chosen one, or None (Mandelbrot)."""
    if spec.kind != "julia":
        return None
    if spec.c is not None:
        return spec.c
    return choose_c(spec.xa, spec.xb, spec.ya, spec.yb, spec.iterations, spec.seed)
