"""write_png renders and encodes in strips: peak memory does not grow with the image."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from faafo.engine import FractalSpec, render_png

CHILD = textwrap.dedent("""
    import json, resource, sys
    from faafo.engine import FractalSpec, render_png, write_png

    render_png(FractalSpec(64, 64, 16, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j))  # load kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    spec = FractalSpec(4000, 4000, 128, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j)
    with open(sys.argv[1], "wb") as out:
        result = write_png(spec, out)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "size": result.size}))
""")


def test_write_png_4000x4000_in_bounded_memory(tmp_path):
    path = tmp_path / "big.png"
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    growth_mib = (report["after_kib"] - report["before_kib"]) / 1024
    # The whole image's counts and RGB pixels alone would take 16e6 * 7 bytes = 107 MiB.
    assert growth_mib < 100, report
    # Absolute peak: the bound (a cold numba compile alone peaks near 430 MiB).
    assert report["after_kib"] / 1024 < 1024, report
    assert path.stat().st_size == report["size"]
    with Image.open(path) as image:
        assert image.size == (4000, 4000) and image.mode == "RGB"
        pixels = np.asarray(image)
    spec = FractalSpec(4000, 4000, 128, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j)
    for rows in ((0, 3), (1999, 2001), (3997, 4000)):
        band = Image.open(io.BytesIO(render_png(spec, rows=rows).png))
        np.testing.assert_array_equal(pixels[rows[0]:rows[1]], np.asarray(band))


def render_peak_rss(tmp_path, width: int, height: int) -> int:
    """``faafo render`` of width x height (16 iterations) in a child: its peak RSS in bytes.

    ``wait4`` gives this very child's resource usage (RUSAGE_CHILDREN would report the
    largest of every child this test process ever had).
    """
    out = tmp_path / f"{width}x{height}.png"
    child = subprocess.Popen(
        [sys.executable, "-m", "faafo.client.cli", "render", "--width", str(width),
         "--height", str(height), "--iterations", "16", "--c-real", "-0.8", "--c-imag",
         "0.156", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.kill()
        raise
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    assert child.returncode == 0, error
    with open(out, "rb") as png:
        head = png.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    assert struct.unpack(">II", head[16:24]) == (width, height)
    return usage.ru_maxrss * 1024


def test_faafo_render_10000x10000_stays_under_1_gib(tmp_path):
    # The "Done when": 10^8 pixels, whole counts and pixels alone would be 700 MB.
    peak = render_peak_rss(tmp_path, 10000, 10000)
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(("width", "height"), [
    (65536, 1526),  # the API's default max_side, at its max_pixels (10^8)
    (1526, 65536),
    (2**20, 95),  # the engine's MAX_SIDE: strips are whole rows, 4 of them here
])
def test_the_widest_images_allowed_stay_under_1_gib(tmp_path, width, height):
    peak = render_peak_rss(tmp_path, width, height)
    assert peak < 1 << 30, f"{width}x{height}: peak RSS {peak / 2**20:.0f} MiB"
