"""The PNG encoder, thumbnails, and write_png's file output."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from faafo.engine import FractalSpec, render_png, write_png
from faafo.engine import png as P
from faafo.engine.thumbnail import Thumbnailer, thumbnail_size


def decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode) == ("PNG", "RGB")
    return np.asarray(image)


rgb_images = hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40),
                                            st.just(3)))


@settings(max_examples=150, deadline=None)
@given(image=rgb_images, data=st.data())
def test_encode_and_stream_round_trip(image, data):
    np.testing.assert_array_equal(decode(P.encode(image)), image)
    cuts = sorted(data.draw(st.lists(st.integers(0, image.shape[0]), max_size=5)))
    strips = np.split(image, cuts)
    streamed = b"".join(P.stream_strips(image.shape[1], image.shape[0], iter(strips)))
    np.testing.assert_array_equal(decode(streamed), image)


def chunk_kinds(data: bytes) -> list[bytes]:
    """The chunk types of a PNG, checking every CRC on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    kinds = []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc
        kinds.append(kind)
        pos += 12 + length
    return kinds


def test_stream_emits_idat_chunks_as_it_goes(monkeypatch):
    monkeypatch.setattr(P, "IDAT_SIZE", 1000)
    image = np.random.default_rng(1).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    pieces = list(P.stream_strips(1000, 1000, iter(np.split(image, 10))))
    assert len(pieces) > 5  # output leaves before the input ends
    data = b"".join(pieces)
    kinds = chunk_kinds(data)
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and kinds.count(b"IDAT") > 5
    np.testing.assert_array_equal(decode(data), image)


def test_chunks_have_valid_crcs():
    assert chunk_kinds(P.encode(np.zeros((2, 3, 3), np.uint8))) == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize(("size", "expected"), [
    ((748, 844), (227, 256)), ((256, 256), (256, 256)), ((100, 40), (100, 40)),
    ((10000, 1), (256, 1)), ((1, 10000), (1, 256)), ((257, 256), (256, 255)),
    ((4000, 3000), (256, 192)),
])
def test_thumbnail_size(size, expected):
    assert thumbnail_size(*size) == expected


def test_thumbnail_is_box_average():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (600, 512, 3), dtype=np.uint8)
    thumb = Thumbnailer(512, 600)
    for strip in np.split(image, [1, 7, 300, 301]):
        thumb.add(strip)
    small = thumb.pixels()
    assert small.shape == (256, 218, 3)
    # Column x goes to box x * 218 // 512, row y to box y * 256 // 600.
    ty, tx = 100, 50
    rows = [y for y in range(600) if y * 256 // 600 == ty]
    cols = [x for x in range(512) if x * 218 // 512 == tx]
    box = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)
    expected = np.floor(box.reshape(-1, 3).mean(axis=0) + 0.5)
    np.testing.assert_array_equal(small[ty, tx], expected)


def test_render_result_thumbnail():
    result = render_png(FractalSpec(700, 300, 64, -2.0, 2.0, -1.0, 1.0, c=-0.7 + 0.27j))
    thumb = decode(result.thumbnail_png)
    assert thumb.shape == (110, 256, 3)
    small = render_png(FractalSpec(50, 30, 64, -2.0, 2.0, -1.0, 1.0, c=-0.7 + 0.27j))
    np.testing.assert_array_equal(decode(small.thumbnail_png), decode(small.png))


def test_write_png_matches_render_png(tmp_path):
    spec = FractalSpec(513, 301, 128, -1.7, 1.7, -1.0, 1.0, palette="fire", seed=4)
    whole = render_png(spec)
    path = tmp_path / "out.png"
    with path.open("wb") as out:
        written = write_png(spec, out, band_rows=7)
    data = path.read_bytes()
    assert written.size == len(data)
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.c == whole.c
    assert written.thumbnail_png == whole.thumbnail_png
    np.testing.assert_array_equal(decode(data), decode(whole.png))
    assert written.render_seconds > 0 and written.encode_seconds > 0


def test_write_png_rejects_bad_band_rows():
    spec = FractalSpec(5, 5, 5, -1.0, 1.0, -1.0, 1.0, c=0j)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="band_rows"):
            write_png(spec, io.BytesIO(), band_rows=bad)
    with pytest.raises(ValueError, match="threads"):
        write_png(spec, io.BytesIO(), threads=0)


def test_files_stay_close_to_zlib_level_6():
    # The budget: at most 25 % larger than Pillow's default encoding.
    spec = FractalSpec(748, 844, 512, -3.07, 3.87, -0.58, 0.64, c=-0.8 + 0.156j)
    result = render_png(spec)
    default = io.BytesIO()
    Image.fromarray(decode(result.png)).save(default, "PNG")
    assert len(result.png) <= 1.25 * len(default.getvalue())


def test_stdlib_zlib_fallback_when_isal_is_missing():
    code = textwrap.dedent("""
        import io, sys
        sys.modules["isal"] = None  # make "from isal import ..." fail
        import numpy as np
        from PIL import Image
        from faafo.engine import png
        assert png.DEFLATE_NAME == "zlib level 1", png.DEFLATE_NAME
        image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
        for data in (png.encode(image),
                     b"".join(png.stream_strips(30, 40, iter(np.split(image, 4))))):
            assert (np.asarray(Image.open(io.BytesIO(data))) == image).all()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
