"""Huge tasks split into bands: planning, band renders, and streaming assembly."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faafo.engine import (
    FractalSpec,
    assemble_png,
    assemble_thumbnail,
    plan_bands,
    render_png,
    resolve_c,
    write_assembled_png,
)


def pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image)


@settings(max_examples=500, deadline=None)
@given(width=st.integers(1, 20000), height=st.integers(1, 20000),
       its=st.integers(0, 5000), max_cost=st.integers(1, 10**10))
def test_plan_bands_covers_rows_within_cost(width, height, its, max_cost):
    bands = plan_bands(width, height, its, max_cost)
    assert bands[0][0] == 0 and bands[-1][1] == height
    sizes = []
    for (y0, y1), following in zip(bands, [*bands[1:], None], strict=True):
        assert y1 > y0
        if following is not None:
            assert following[0] == y1
        sizes.append(y1 - y0)
        assert width * (y1 - y0) * max(its, 1) <= max_cost or y1 - y0 == 1
    assert max(sizes) - min(sizes) <= 1


def test_plan_bands_examples():
    assert plan_bands(100, 10, 10, 10**9) == [(0, 10)]
    assert plan_bands(100, 10, 10, 4000) == [(0, 4), (4, 7), (7, 10)]
    assert plan_bands(100, 3, 10, 1) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError):
        plan_bands(100, 10, 10, 0)
    with pytest.raises(ValueError):
        plan_bands(0, 10, 10, 10)


@pytest.mark.parametrize(("kind", "palette"), [("julia", "faafo"), ("mandelbrot", "faafo"),
                                                ("julia", "ultra"), ("mandelbrot", "ocean")])
def test_bands_assemble_into_the_whole_image(kind, palette):
    spec = FractalSpec(613, 467, 300, -2.1, 1.3, 1.2, -1.3, kind=kind, palette=palette, seed=9)
    whole = render_png(spec)
    fixed = dataclasses.replace(spec, c=resolve_c(spec))
    bands = plan_bands(spec.width, spec.height, spec.iterations, 613 * 300 * 40)
    assert len(bands) > 5
    band_pngs = []
    for y0, y1 in bands:
        band = render_png(fixed, rows=(y0, y1))
        assert band.thumbnail_png is None and band.c == whole.c
        assert pixels(band.png).shape == (y1 - y0, spec.width, 3)
        band_pngs.append(band.png)
    joined = b"".join(assemble_png(spec.width, spec.height, iter(band_pngs)))
    np.testing.assert_array_equal(pixels(joined), pixels(whole.png))
    assert assemble_thumbnail(spec.width, spec.height, band_pngs) == whole.thumbnail_png
    out = io.BytesIO()
    written = write_assembled_png(spec.width, spec.height, iter(band_pngs), out)
    assert out.getvalue() == joined
    assert written.size == len(joined)
    assert written.sha256 == hashlib.sha256(joined).hexdigest()
    assert written.thumbnail_png == whole.thumbnail_png


def test_assembly_streams_chunks_lazily():
    spec = FractalSpec(2000, 600, 40, -2.0, 2.0, -1.5, 1.5, c=-0.4 + 0.6j)
    bands = plan_bands(spec.width, spec.height, spec.iterations, 2000 * 40 * 100)
    consumed = []

    def band_source():
        for y0, y1 in bands:
            consumed.append(y0)
            yield render_png(spec, rows=(y0, y1)).png

    stream = assemble_png(spec.width, spec.height, band_source())
    assert next(stream).startswith(b"\x89PNG\r\n\x1a\n")
    assert len(consumed) <= 1  # nothing rendered ahead of need
    rest = b"".join(stream)
    assert len(consumed) == len(bands) and rest.endswith(b"IEND\xaeB`\x82")


def test_single_row_bands():
    spec = FractalSpec(37, 5, 50, -1.5, 1.5, -1.0, 1.0, kind="mandelbrot")
    band_pngs = [render_png(spec, rows=(y, y + 1)).png for y in range(5)]
    joined = b"".join(assemble_png(37, 5, band_pngs))
    np.testing.assert_array_equal(pixels(joined), pixels(render_png(spec).png))


def test_band_of_random_julia_needs_a_reproducible_c():
    spec = FractalSpec(10, 10, 20, -1.0, 1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match=r"c or spec\.seed"):
        render_png(spec, rows=(0, 5))
    render_png(FractalSpec(10, 10, 20, -1.0, 1.0, -1.0, 1.0, seed=1), rows=(0, 5))


@pytest.mark.parametrize("rows", [(0, 0), (5, 3), (-1, 4), (0, 11), (0.0, 3)])
def test_bad_band_rows(rows):
    with pytest.raises(ValueError, match="rows"):
        render_png(FractalSpec(10, 10, 20, -1.0, 1.0, -1.0, 1.0, c=0j), rows=rows)


def band_pngs_of(spec, bands):
    return [render_png(spec, rows=band).png for band in bands]


def test_assembly_rejects_bands_that_do_not_fit():
    spec = FractalSpec(20, 10, 20, -1.0, 1.0, -1.0, 1.0, c=0.3j)
    good = band_pngs_of(spec, [(0, 5), (5, 10)])
    with pytest.raises(ValueError, match="rows"):
        b"".join(assemble_png(20, 10, good[:1]))  # too few rows
    with pytest.raises(ValueError, match="rows"):
        b"".join(assemble_png(20, 10, good + good[:1]))  # too many
    with pytest.raises(ValueError, match="wide"):
        b"".join(assemble_png(21, 10, good))
    with pytest.raises(ValueError, match="PNG"):
        b"".join(assemble_png(20, 10, [b"not a png"]))
    grey = io.BytesIO()
    Image.new("L", (20, 10)).save(grey, "PNG")
    with pytest.raises(ValueError, match="RGB"):
        b"".join(assemble_png(20, 10, [grey.getvalue()]))
    with pytest.raises(ValueError):
        assemble_thumbnail(20, 10, good[:1])


@pytest.mark.parametrize(("width", "height"), [(2**20 + 1, 1), (1, 2**20 + 1), (0, 5)])
def test_assembly_refuses_sides_beyond_the_engine_limit_before_allocating(width, height):
    # An assembly's sizes come from a message, not a FractalSpec: the thumbnail's
    # per-column arrays (8 bytes a column) must not be sized by an unchecked width.
    with pytest.raises(ValueError, match=r"(width|height) must be in 1\.\.1048576"):
        assemble_thumbnail(width, height, [])
    with pytest.raises(ValueError, match=r"(width|height) must be in 1\.\.1048576"):
        write_assembled_png(width, height, [], io.BytesIO())
