"""Escape counts at compiled speed, bit-exact with the reference's Python loop.

The reference (``faafo-v1``) computes, per pixel, with Python ``complex`` numbers::

    z = zx + zy * 1j                     # zx = x * (xb - xa) / (W - 1) + xa, same for zy
    for i in range(iterations):
        if abs(z) > 2.0:                 # CPython: hypot(re, im) from the C library
            break
        z = z * z + c                    # CPython: (re*re - im*im) + c.re, (re*im + im*re) + c.im

Every floating-point operation here is the same IEEE operation in the same order, and
nothing is fused: no ``fastmath``, so LLVM never contracts ``a*b + c`` into an FMA (that
changes pixels on big images). The escape test avoids calling ``hypot`` on every
iteration without changing a single answer: ``s = re*re + im*im`` is computed anyway;
when ``s <= 4(1 - 2**-40)`` the true modulus is certainly below 2, when
``s > 4(1 + 2**-40)`` it is certainly above 2 (rounding errors are ~2**-52), and only
in between (practically never) the very C ``hypot`` that CPython calls decides.

As in the reference, a point that never escapes gets ``iterations - 1``. The Mandelbrot
kind runs the same loop with ``z`` starting at 0 and ``c`` the pixel's point.

Defined cases the reference could not handle (it crashed):

- a side of 1 pixel: the divisor ``W - 1`` (or ``H - 1``) is replaced by 1, so the single
  column samples ``xa`` (the single row samples ``ya``);
- ``iterations == 0``: the loop never runs; the count is 0 for every pixel;
- a start point so large that CPython's ``abs()`` raises ``OverflowError``: escaped.

Speed: each worker thread streams through its pixels with ``LANES`` independent orbits
held in small arrays. The inner loop advances every lane by up to ``UNROLL`` steps with
branch-free selects, which LLVM turns into SIMD code (AVX-512: 8 doubles per register).
A lane whose orbit stops (escape candidate or iteration budget reached) is settled in a
scalar pass and immediately refilled with the next pixel, so lanes never idle waiting for
slow neighbours the way a fixed block of pixels would; a new pixel first gets
``PRESTEPS`` scalar steps, so the many pixels that escape at once never take a lane.
Kernels release the GIL and run on plain Python threads (not numba's ``parallel=True``
runtime, whose default ``workqueue`` layer aborts the process when two threads launch
parallel kernels at once, and which keeps threads that a ``fork`` does not copy); each
thread takes every ``n``-th row, which balances the load without any scheduling.
Compiled code is cached on disk (``cache=True``), so the compile cost (a few seconds)
is paid once per machine, not once per process.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

LANES = 16
UNROLL = 8
# Reference-loop steps run on a new pixel before it takes a lane.
PRESTEPS = 1
# Squared-modulus band around 4 where rounding could matter; outside it the answer is certain.
_LO = 4.0 * (1.0 - 2.0**-40)
_HI = 4.0 * (1.0 + 2.0**-40)
# Lane counter of a lane with no pixel: counts up forever without reaching any budget.
_IDLE = -(1 << 62)
# Smooth colouring: extra iterations after the escape until |z|^2 exceeds this.
_SMOOTH_R2 = 1.0e6
_SMOOTH_EXTRA = 12
# Below this many pixel-iterations a render runs on the calling thread only.
SERIAL_COST = 1 << 21


@njit(inline="always")
def _escaped(x: float, y: float) -> bool:
    """CPython's ``abs(complex(x, y)) > 2.0``, including its special cases."""
    if math.isinf(x) or math.isinf(y):
        return True
    if math.isnan(x) or math.isnan(y):
        return False
    # An infinite hypot of finite parts makes CPython raise OverflowError: escaped too.
    return math.hypot(x, y) > 2.0


@njit(inline="always")
def _smooth_value(x: float, y: float, a: float, b: float, k: int) -> float:
    """Continuous escape value for smooth palettes (renormalised iteration count).

    After the escape at step ``k``, the orbit is followed until ``|z|`` is large (``n``
    steps in all); then ``n + 1 - log2(log2 |z_n|)`` hardly depends on ``n``, so
    neighbouring pixels that escaped one step apart get nearly equal values: colours
    without bands. Always >= 0; the escape counts themselves are untouched.
    """
    n = k
    for _ in range(_SMOOTH_EXTRA):
        r2 = x * x + y * y
        if not (r2 <= _SMOOTH_R2):
            break
        p = x * y
        x = (x * x - y * y) + a
        y = (p + p) + b
        n += 1
    r2 = x * x + y * y
    if not (r2 > 4.0) or math.isinf(r2):
        return float(k)
    v = n + 1.0 - math.log2(0.5 * math.log(r2) / math.log(2.0))
    return max(v, 0.0)


@njit(inline="always")
def _stream(
    counts,
    mu,
    smooth,
    width,
    height,
    y0,
    y1,
    task,
    ntasks,
    iterations,
    xa,
    xb,
    ya,
    yb,
    cr,
    ci,
    julia,
):
    """Escape counts of rows ``y0 + task + m*ntasks`` (< y1) into ``counts[y - y0]``."""
    wd = max(width - 1, 1)
    hd = max(height - 1, 1)
    nrows = (y1 - y0 - task + ntasks - 1) // ntasks
    total = max(nrows, 0) * width
    last = max(iterations - 1, 0)
    flat = counts.reshape(-1)
    mflat = mu.reshape(-1)

    # The reference's coordinates: x * (xb - xa) / (W - 1) + xa, one division per column.
    dx = xb - xa
    dy = yb - ya
    column_x = np.empty(width)
    for col in range(width):
        column_x[col] = col * dx / wd + xa

    # Lane state. pix: output index, -1 parked (no pixels left), -2 empty (needs one).
    zr = np.zeros(LANES)
    zi = np.zeros(LANES)
    car = np.zeros(LANES)
    cai = np.zeros(LANES)
    kk = np.full(LANES, _IDLE, np.int64)
    pix = np.full(LANES, -2, np.int64)

    # Cursor over this task's pixels, row by row.
    handed = 0
    col = 0
    row = y0 + task
    zy = row * dy / hd + ya
    zr_add = zy * 0.0 - 0.0  # zx + zy*1j adds this to zx, exactly as CPython does
    base = (row - y0) * width

    live = 0
    settle = True
    while True:
        if settle:
            for j in range(LANES):
                x = zr[j]
                y = zi[j]
                k = kk[j]
                p = pix[j]
                if julia:
                    a = cr
                    b = ci
                else:
                    a = car[j]
                    b = cai[j]
                if p != -2:
                    if x * x + y * y <= _LO and k < iterations:
                        continue  # still running
                    if p == -1:  # a parked lane's orbit left the disc: park it again
                        zr[j] = 0.0
                        zi[j] = 0.0
                        kk[j] = _IDLE
                        continue
                    if k >= iterations:
                        flat[p] = last
                        if smooth:
                            mflat[p] = -1.0
                    elif x * x + y * y > _HI or _escaped(x, y):
                        flat[p] = k
                        if smooth:
                            mflat[p] = _smooth_value(x, y, a, b, k)
                    else:  # within rounding of |z| = 2, and hypot says inside: step on
                        q = x * y
                        zr[j] = (x * x - y * y) + a
                        zi[j] = (q + q) + b
                        kk[j] = k + 1
                        continue
                    live -= 1
                # The lane is free: give it the next pixel that survives PRESTEPS steps of
                # the reference loop, run right here (cheaper than a lane for the many
                # pixels that escape at once), or park it when the task has no more.
                loaded = False
                while handed < total:
                    target = base + col
                    if julia:
                        x = column_x[col] + zr_add
                        y = zy
                    else:
                        x = 0.0
                        y = 0.0
                        a = column_x[col] + zr_add
                        b = zy
                    handed += 1
                    col += 1
                    if col == width and handed < total:
                        col = 0
                        row += ntasks
                        zy = row * dy / hd + ya
                        zr_add = zy * 0.0 - 0.0
                        base = (row - y0) * width
                    k = 0
                    escaped = False
                    while k < PRESTEPS and k < iterations:
                        xx = x * x
                        yy = y * y
                        if not (xx + yy <= _LO) and (xx + yy > _HI or _escaped(x, y)):
                            escaped = True
                            break
                        q = x * y
                        x = (xx - yy) + a
                        y = (q + q) + b
                        k += 1
                    if escaped or k >= iterations:
                        flat[target] = k if escaped else last
                        if smooth:
                            mflat[target] = _smooth_value(x, y, a, b, k) if escaped else -1.0
                        continue
                    zr[j] = x
                    zi[j] = y
                    car[j] = a
                    cai[j] = b
                    kk[j] = k
                    pix[j] = target
                    live += 1
                    loaded = True
                    break
                if not loaded:
                    zr[j] = 0.0
                    zi[j] = 0.0
                    car[j] = 0.0
                    cai[j] = 0.0
                    kk[j] = _IDLE
                    pix[j] = -1
            if live == 0:
                break
        # Advance every lane up to UNROLL steps, branch-free (SIMD); a lane that stops
        # keeps its state so the settling pass above sees exactly where it stopped.
        settle = False
        for j in range(LANES):
            x = zr[j]
            y = zi[j]
            k = kk[j]
            if julia:
                a = cr
                b = ci
            else:
                a = car[j]
                b = cai[j]
            go = True
            for _ in range(UNROLL):
                xx = x * x
                yy = y * y
                go = (xx + yy <= _LO) and (k < iterations)
                q = x * y
                nx = (xx - yy) + a
                ny = (q + q) + b
                x = nx if go else x
                y = ny if go else y
                k = k + 1 if go else k
            zr[j] = x
            zi[j] = y
            kk[j] = k
            settle |= not go


@njit(cache=True, nogil=True)
def _julia_task(
    counts, mu, smooth, width, height, y0, y1, task, ntasks, iterations, xa, xb, ya, yb, cr, ci
):
    _stream(
        counts,
        mu,
        smooth,
        width,
        height,
        y0,
        y1,
        task,
        ntasks,
        iterations,
        xa,
        xb,
        ya,
        yb,
        cr,
        ci,
        True,
    )


@njit(cache=True, nogil=True)
def _mandelbrot_task(
    counts, mu, smooth, width, height, y0, y1, task, ntasks, iterations, xa, xb, ya, yb
):
    _stream(
        counts,
        mu,
        smooth,
        width,
        height,
        y0,
        y1,
        task,
        ntasks,
        iterations,
        xa,
        xb,
        ya,
        yb,
        0.0,
        0.0,
        False,
    )


def available_threads() -> int:
    """CPUs this process may run on (respects affinity masks and cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_count(width: int, rows: int, iterations: int, threads: int | None) -> int:
    """Threads worth using: 1 for small jobs (thread start-up would dominate)."""
    limit = available_threads() if threads is None else max(1, int(threads))
    if width * rows * max(iterations, 1) <= SERIAL_COST:
        return 1
    return max(1, min(limit, rows))


def escape_counts(
    width: int,
    height: int,
    iterations: int,
    xa: float,
    xb: float,
    ya: float,
    yb: float,
    c: complex | None,
    y0: int,
    y1: int,
    *,
    smooth: bool = False,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Escape counts (int32, rows ``y0..y1-1`` of the full image) and smooth values.

    ``c`` is the Julia constant, or None for the Mandelbrot set (``z0 = 0``, ``c`` = the
    pixel). The smooth values (float32, -1 for points that never escaped) are returned
    only when ``smooth`` is true.
    """
    rows = y1 - y0
    counts = np.zeros((rows, width), np.int32)
    mu = np.zeros((rows, width) if smooth else (1, 1), np.float32)
    n = thread_count(width, rows, iterations, threads)
    xa, xb, ya, yb = float(xa), float(xb), float(ya), float(yb)

    def run(task: int) -> None:
        if c is None:
            _mandelbrot_task(
                counts, mu, smooth, width, height, y0, y1, task, n, iterations, xa, xb, ya, yb
            )
        else:
            _julia_task(
                counts,
                mu,
                smooth,
                width,
                height,
                y0,
                y1,
                task,
                n,
                iterations,
                xa,
                xb,
                ya,
                yb,
                float(c.real),
                float(c.imag),
            )

    if n == 1:
        run(0)
    else:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="faafo-render") as pool:
            list(pool.map(run, range(n)))
    return counts, (mu if smooth else None)
