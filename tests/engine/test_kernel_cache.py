"""The kernels compile once per machine, not once per process: the on-disk cache works.

Each check runs in fresh processes, since a kernel loads (or compiles) once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

WARM_UP = textwrap.dedent("""
    import json
    from faafo.engine.warmup import warm_up

    done = warm_up()
    print(json.dumps({name: [k.hits, k.misses] for name, k in done.kernels.items()}))
""")

# After the warm-up, renders shaped like the worker's and faafo render's (threads,
# bands, every palette family, a file) must find every kernel already compiled: no
# signature the warm-up did not make, or the first real task would compile again.
REAL_RENDERS = textwrap.dedent("""
    import io, json
    from faafo.engine import FractalSpec, render_png, write_png
    from faafo.engine.warmup import cached_kernels, warm_up

    warm_up()
    before = {name: len(d.signatures) for name, d in cached_kernels().items()}
    julia = FractalSpec(640, 480, 300, -1.6, 1.6, -1.2, 1.2, seed=3)
    render_png(julia, threads=2)
    render_png(julia, rows=(100, 180), threads=1)
    render_png(FractalSpec(300, 200, 64, -2.2, 0.8, -1.2, 1.2, kind="mandelbrot",
                           palette="fire"), threads=2)
    write_png(FractalSpec(500, 20, 50, -1.5, 1.5, -1.0, 1.0, palette="ocean", c=0.3 + 0.5j),
              io.BytesIO(), band_rows=7)
    after = {name: len(d.signatures) for name, d in cached_kernels().items()}
    print(json.dumps({"before": before, "after": after}))
""")


def run_child(code: str, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_second_process_loads_every_kernel_from_the_disk_cache(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    first = run_child(WARM_UP, env)
    assert set(first) == {"julia", "mandelbrot", "colour_counts", "colour_smooth", "box_sums"}
    assert all(misses >= 1 for _, misses in first.values()), f"an empty cache compiles: {first}"
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the compiled code went to disk"
    second = run_child(WARM_UP, env)
    assert {name: misses for name, (_, misses) in second.items()} == dict.fromkeys(first, 0), (
        f"the second process compiled again: {second}"
    )
    assert all(hits >= 1 for hits, _ in second.values()), second


def test_the_warm_up_compiles_the_signatures_real_renders_use():
    report = run_child(REAL_RENDERS, dict(os.environ))
    assert report["after"] == report["before"], report
    assert all(count == 1 for count in report["before"].values()), report
