"""write_png renders and encodes in strips: peak memory does not grow with the image."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
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
