"""The engine's escape counts and pixels equal the slow pure-Python reference, bit for bit."""

from __future__ import annotations

import io
import math

import engine_reference as ref
import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from faafo.engine import FractalSpec, render_png
from faafo.engine import kernel as K

coordinate = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False)
constant = st.builds(complex, st.floats(-2.0, 2.0), st.floats(-2.0, 2.0))
iterations = st.one_of(st.sampled_from([0, 1, 2, 11, 12, 13]), st.integers(0, 80))


def engine_counts(width, height, its, xa, xb, ya, yb, c, y0=0, y1=None, **kw):
    counts, _ = K.escape_counts(width, height, its, xa, xb, ya, yb, c, y0,
                                height if y1 is None else y1, **kw)
    return counts


def reference_counts(width, height, its, xa, xb, ya, yb, c, y0=0, y1=None):
    rows = range(y0, height if y1 is None else y1)
    return np.array([ref.counts_row(y, width, height, its, xa, xb, ya, yb, c) for y in rows],
                    dtype=np.int64).reshape(len(rows), width)


@settings(max_examples=2500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 10), height=st.integers(1, 10), its=iterations,
       xa=coordinate, xb=coordinate, ya=coordinate, yb=coordinate,
       c=st.one_of(st.none(), constant), threads=st.sampled_from([1, 2, 3]))
@example(width=1, height=1, its=0, xa=0.0, xb=0.0, ya=0.0, yb=0.0, c=0j, threads=1)
@example(width=5, height=5, its=30, xa=-2.0, xb=2.0, ya=-2.0, yb=2.0, c=0j, threads=1)
@example(width=1, height=7, its=12, xa=1.0, xb=-1.0, ya=1.5, yb=-1.5, c=-0.8 + 0.156j,
         threads=2)
def test_random_small_images_match_reference(width, height, its, xa, xb, ya, yb, c, threads,
                                             monkeypatch):
    monkeypatch.setattr(K, "SERIAL_COST", 0)  # exercise the threaded path on tiny images
    expected = reference_counts(width, height, its, xa, xb, ya, yb, c)
    got = engine_counts(width, height, its, xa, xb, ya, yb, c, threads=threads)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 9), height=st.integers(2, 9), its=iterations,
       xa=coordinate, xb=coordinate, ya=coordinate, yb=coordinate,
       c=st.one_of(st.none(), constant), data=st.data())
def test_bands_of_rows_match_reference(width, height, its, xa, xb, ya, yb, c, data):
    y0 = data.draw(st.integers(0, height - 1))
    y1 = data.draw(st.integers(y0 + 1, height))
    expected = reference_counts(width, height, its, xa, xb, ya, yb, c, y0, y1)
    np.testing.assert_array_equal(engine_counts(width, height, its, xa, xb, ya, yb, c, y0, y1),
                                  expected)


@settings(max_examples=1500, deadline=None)
@given(angle=st.floats(0.0, 2 * math.pi), scale=st.sampled_from([1.0, 1 - 2**-52, 1 + 2**-52]),
       c=st.one_of(st.none(), constant), its=st.integers(1, 40))
def test_points_on_the_escape_circle(angle, scale, c, its):
    # |z| within an ulp or two of 2: the only place where the engine asks hypot itself.
    x, y = 2 * scale * math.cos(angle), 2 * scale * math.sin(angle)
    expected = reference_counts(1, 1, its, x, x, y, y, c)
    np.testing.assert_array_equal(engine_counts(1, 1, its, x, x, y, y, c), expected)


@pytest.mark.parametrize(("window", "c", "its"), [
    ((-2.0, -2.0, 0.0, 0.0), None, 1000),  # c = -2: orbit 0, -2, 2, 2, ... |z| == 2 forever
    ((2.0, 2.0, 0.0, 0.0), -2 + 0j, 500),  # z = 2 is a fixed point on the circle
    ((1.2, 1.2, 1.6, 1.6), 0j, 10),  # 1.2**2 + 1.6**2 rounds near 4
    ((-2.0, 2.0, -2.0, 2.0), 0.25 + 0j, 300),  # parabolic point, slow orbits
    ((-1e308, 1e308, -1e308, 1e308), 0.3 + 0.1j, 20),  # span overflows: inf and nan points
    ((1e308, 1.7e308, -1.7e308, 1.7e308), None, 5),  # hypot overflows: OverflowError
    ((1e-320, -1e-320, 5e-324, 0.0), -0.1 + 0.65j, 200),  # subnormal coordinates
    ((3.0, -3.0, 2.0, -2.0), -0.8 + 0.156j, 64),  # mirrored window
    ((-3.0, -1.0, -2.0, -0.5), 0.285 + 0.01j, 64),  # negative window
])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (1, 6), (6, 1), (7, 5)])
def test_edge_cases_match_reference(window, c, its, width, height):
    expected = reference_counts(width, height, its, *window, c)
    np.testing.assert_array_equal(engine_counts(width, height, its, *window, c), expected)


@pytest.mark.parametrize("its", [0, 1, 11, 12])
def test_small_iteration_budgets(its):
    window = (-1.5, 1.5, -1.0, 1.0)
    for c in (-0.8 + 0.156j, None):
        expected = reference_counts(9, 7, its, *window, c)
        np.testing.assert_array_equal(engine_counts(9, 7, its, *window, c), expected)
    if its == 0:
        assert not engine_counts(9, 7, its, *window, 0j).any()


@settings(max_examples=250, deadline=None)
@given(width=st.integers(1, 8), height=st.integers(1, 8), its=iterations,
       xa=coordinate, xb=coordinate, ya=coordinate, yb=coordinate, c=constant)
def test_png_pixels_match_reference_colours(width, height, its, xa, xb, ya, yb, c):
    spec = FractalSpec(width, height, its, xa, xb, ya, yb, c=c)
    result = render_png(spec)
    image = Image.open(io.BytesIO(result.png))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (width, height))
    expected = [[ref.faafo_colour(i) for i in row]
                for row in ref.counts(width, height, its, xa, xb, ya, yb, c)]
    np.testing.assert_array_equal(np.asarray(image), np.array(expected, dtype=np.uint8))


def test_large_image_sampled_rows_match_reference():
    # Big images are where fused multiply-adds or a different coordinate formula show up:
    # a fastmath build of the kernel differs from the reference on ~2500 pixels spread
    # over ~1500 rows of this image; these 27 sampled rows hold 16 of them.
    width = height = 4000
    its = 512
    window = (-1.5, 1.5, -1.0, 1.0)
    c = -0.8 + 0.156j
    counts = engine_counts(width, height, its, *window, c)
    for y in sorted({0, 1, 1999, 2000, 3998, 3999, *range(77, height, 191)}):
        expected = ref.counts_row(y, width, height, its, *window, c)
        np.testing.assert_array_equal(counts[y], expected, err_msg=f"row {y}")


def test_large_mandelbrot_sampled_rows_match_reference():
    width, height, its = 3000, 2000, 200
    window = (-2.2, 0.8, -1.0, 1.0)
    counts = engine_counts(width, height, its, *window, None)
    for y in (0, 999, 1000, 1618, 1999):
        expected = ref.counts_row(y, width, height, its, *window, None)
        np.testing.assert_array_equal(counts[y], expected, err_msg=f"row {y}")


def test_kernels_contain_no_fused_multiply_add():
    # Cached code cannot be inspected: compile fresh, uncached copies of the kernels.
    counts = np.zeros((3, 3), np.int32)
    mu = np.zeros((1, 1), np.float32)
    julia = numba.njit(nogil=True)(K._julia_task.py_func)
    mandelbrot = numba.njit(nogil=True)(K._mandelbrot_task.py_func)
    julia(counts, mu, False, 3, 3, 0, 3, 0, 1, 9, -1.0, 1.0, -1.0, 1.0, 0.1, 0.2)
    mandelbrot(counts, mu, False, 3, 3, 0, 3, 0, 1, 9, -1.0, 1.0, -1.0, 1.0)
    for kernel in (julia, mandelbrot):
        (asm,) = kernel.inspect_asm().values()
        assert "mulsd" in asm or "mulpd" in asm  # really the kernel's code
        for fused in ("vfmadd", "vfmsub", "vfnmadd", "vfnmsub"):
            assert fused not in asm
