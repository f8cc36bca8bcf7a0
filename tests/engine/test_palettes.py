"""Palettes and kinds: the reference colours, the smooth palettes, the Mandelbrot set."""

from __future__ import annotations

import io

import engine_reference as ref
import numpy as np
import pytest
from PIL import Image

from faafo.engine import KINDS, PALETTES, FractalSpec, render_png
from faafo.engine import colour as C
from faafo.engine import kernel as K


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_names():
    assert KINDS == ("julia", "mandelbrot")
    assert PALETTES[0] == "faafo"
    assert set(PALETTES) == {"faafo", *C.GRADIENTS}
    assert len(C.GRADIENTS) >= 2


def test_faafo_table_is_the_reference_formula():
    for i in range(300):
        assert tuple(C.faafo_table()[i % 32]) == ref.faafo_colour(i)


@pytest.mark.parametrize("palette", sorted(C.GRADIENTS))
def test_smooth_palettes(palette):
    spec = FractalSpec(160, 120, 200, -2.2, 0.8, -1.2, 1.2, kind="mandelbrot", palette=palette)
    pixels = decode(render_png(spec).png)
    counts = np.array(ref.counts(160, 120, 200, -2.2, 0.8, -1.2, 1.2, None))
    inside = counts == 199
    assert inside.any() and (~inside).any()
    assert (pixels[inside] == 0).all()  # the set itself is black
    outside = pixels[~inside]
    assert len(np.unique(outside.reshape(-1, 3), axis=0)) > 100  # smooth: many colours


@pytest.mark.parametrize(("c", "window"), [
    (None, (-2.6, -1.9, 0.4, 0.4)),
    (-0.8 + 0.156j, (1.0, 2.2, 0.3, 0.3)),
    (0.3 + 0.5j, (-2.0, -0.6, -0.9, -0.9)),
])
def test_smooth_values_are_continuous_across_escape_counts(c, window):
    # A line of points outside the set: counts step, the smooth value must not jump.
    counts, mu = K.escape_counts(4000, 1, 300, *window, c, 0, 1, smooth=True)
    plain, none = K.escape_counts(4000, 1, 300, *window, c, 0, 1)
    np.testing.assert_array_equal(counts, plain)  # same escape counts either way
    assert none is None
    assert len(np.unique(counts)) >= 3
    assert (mu >= 0).all()
    assert np.abs(np.diff(mu[0])).max() < 0.05


def test_smooth_values_mark_the_inside():
    counts, mu = K.escape_counts(90, 60, 80, -2.2, 0.8, -1.2, 1.2, None, 0, 60, smooth=True)
    inside = mu < 0
    assert inside.any() and (mu[inside] == -1).all() and (counts[inside] == 79).all()


def test_smooth_colours_are_continuous_in_mu():
    mu = np.linspace(0.0, 60.0, 20001, dtype=np.float32).reshape(1, -1)
    for palette in C.GRADIENTS:
        rgb = C.colourise(np.zeros(mu.shape, np.int32), mu, palette).astype(int)
        assert np.abs(np.diff(rgb[0], axis=0)).max() <= 12, palette


def test_mandelbrot_is_the_reference_loop_from_zero():
    spec = FractalSpec(40, 30, 100, -2.0, 0.5, -1.2, 1.2, kind="mandelbrot")
    result = render_png(spec)
    assert result.c is None
    expected = [[ref.faafo_colour(i) for i in row]
                for row in ref.counts(40, 30, 100, -2.0, 0.5, -1.2, 1.2, None)]
    np.testing.assert_array_equal(decode(result.png), np.array(expected, dtype=np.uint8))


def test_mandelbrot_ignores_seed_and_c():
    a = render_png(FractalSpec(30, 20, 50, -2.0, 0.5, -1.2, 1.2, kind="mandelbrot", seed=1))
    b = render_png(FractalSpec(30, 20, 50, -2.0, 0.5, -1.2, 1.2, kind="mandelbrot", c=1j))
    assert a.png == b.png and a.c is None and b.c is None


def test_unknown_palette():
    with pytest.raises(ValueError, match="palette"):
        C.is_smooth("plaid")
