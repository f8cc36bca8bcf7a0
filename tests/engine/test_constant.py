"""choose_c: the reference acceptance rule, reproducible, bounded, with a defined fallback."""

from __future__ import annotations

import time

import engine_reference as ref
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faafo.engine import FractalSpec, choose_c, resolve_c
from faafo.engine import constant as C

window = st.tuples(*[st.floats(-3.0, 3.0) for _ in range(4)])


def in_window(c: complex, xa: float, xb: float, ya: float, yb: float) -> bool:
    return (min(xa, xb) <= c.real <= max(xa, xb)) and (min(ya, yb) <= c.imag <= max(ya, yb))


@settings(max_examples=200, deadline=None)
@given(w=window, its=st.integers(0, 600), seed=st.integers(-(2**70), 2**70))
def test_same_seed_same_c_inside_the_window(w, its, seed):
    c = choose_c(*w, its, seed)
    assert c == choose_c(*w, its, seed)
    assert in_window(c, *w)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), its=st.integers(12, 1000))
def test_accepted_c_satisfies_the_reference_rule(seed, its):
    # The seed's own windows contain the Mandelbrot set's boundary: a c is always accepted.
    c = choose_c(-2.5, 1.5, -1.5, 1.5, its, seed)
    assert 10 < ref.escape_count(c, c, its) < 100


def test_seeds_give_different_constants():
    assert len({choose_c(-2.0, 2.0, -1.5, 1.5, 256, seed) for seed in range(20)}) == 20


def test_no_seed_draws_fresh_constants():
    assert len({choose_c(-2.0, 2.0, -1.5, 1.5, 256, None) for _ in range(10)}) > 1


def test_first_accepted_draw_is_the_reference_sampling():
    import random

    rng = random.Random(42)
    while True:
        cx = rng.random() * (1.5 - -2.5) + -2.5
        cy = rng.random() * (1.5 - -1.5) + -1.5
        c = cx + cy * 1j
        if 10 < ref.escape_count(c, c, 512) < 100:
            break
    assert choose_c(-2.5, 1.5, -1.5, 1.5, 512, 42) == c


@pytest.mark.parametrize("its", [0, 1, 2, 5, 11])
def test_tiny_budgets_fall_back_without_hanging(its):
    started = time.perf_counter()
    c = choose_c(-2.0, 2.0, -1.5, 1.5, its, 7)
    assert time.perf_counter() - started < 2.0
    assert in_window(c, -2.0, 2.0, -1.5, 1.5)
    assert c == choose_c(-2.0, 2.0, -1.5, 1.5, its, 7)
    # The fallback is a draw with the highest count these budgets allow.
    assert ref.escape_count(c, c, its) == max(its - 1, 0)


@pytest.mark.parametrize(("w", "its"), [
    ((5.0, 9.0, 5.0, 9.0), 256),  # far from the Mandelbrot set: everything escapes at once
    ((0.0, 0.0, 0.0, 0.0), 256),  # a single point that never escapes
    ((-1e308, 1e308, -1e308, 1e308), 64),  # spans that overflow
    ((-2.0, 2.0, -1.5, 1.5), 10**9),  # enormous budgets cost nothing extra
])
def test_hopeless_windows_finish_quickly_in_the_window(w, its):
    started = time.perf_counter()
    c = choose_c(*w, its, 3)
    assert time.perf_counter() - started < 2.0
    assert in_window(c, *w)
    assert c == choose_c(*w, its, 3)


def test_fallback_is_the_draw_nearest_the_accepted_range():
    # In [5, 9]^2 every draw escapes at once (count 0): the first draw is the fallback.
    import random

    rng = random.Random(11)
    first = (rng.random() * 4.0 + 5.0) + (rng.random() * 4.0 + 5.0) * 1j
    assert choose_c(5.0, 9.0, 5.0, 9.0, 256, 11) == first


def test_search_is_bounded():
    assert C.MAX_TRIES <= 1000


def test_resolve_c():
    spec = FractalSpec(4, 4, 64, -2.0, 2.0, -1.5, 1.5)
    assert resolve_c(FractalSpec(4, 4, 64, -2.0, 2.0, -1.5, 1.5, c=0.3 - 0.5j)) == 0.3 - 0.5j
    seeded = FractalSpec(4, 4, 64, -2.0, 2.0, -1.5, 1.5, seed=5)
    assert resolve_c(seeded) == choose_c(-2.0, 2.0, -1.5, 1.5, 64, 5)
    assert isinstance(resolve_c(spec), complex)
    assert resolve_c(FractalSpec(4, 4, 64, -2.0, 2.0, -1.5, 1.5, kind="mandelbrot")) is None
