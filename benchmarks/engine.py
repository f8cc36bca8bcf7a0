"""Rendering engine benchmark: the figures issue 3 asks for.

Run: ``python benchmarks/engine.py`` (a few minutes) or ``--quick`` (well under one).

1. Speed: the fixed 748x844 image with 512 iterations (xa=-1.5 xb=1.5 ya=-1 yb=1,
   c=-0.8+0.156i): median time of the engine's escape counts and of a pure-Python
   per-pixel renderer, their ratio, and the engine's throughput in escape iterations per
   nanosecond (iterations = passes of the reference loop, ``count + 1`` per pixel).
2. The seed-like task (748x844, 512 iterations, xa=-3.07 xb=3.87 ya=-0.58 yb=0.64,
   c=-0.8+0.156i): render, colour and encode times and PNG sizes, against Pillow's
   default encoding, plus the other deflate candidates that are installed.
3. Compile cost: first render in a fresh process with an empty and a warm kernel cache.
4. A 10000x10000 image written with ``write_png``: time and peak memory (subprocess).

Numbers are medians over repeated runs; the machine's other load shows up in them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image

from faafo.engine import FractalSpec, colour, kernel, png, render_png

SPEED = {"width": 748, "height": 844, "iterations": 512,
         "window": (-1.5, 1.5, -1.0, 1.0), "c": -0.8 + 0.156j}
SEED_LIKE = {"width": 748, "height": 844, "iterations": 512,
             "window": (-3.07, 3.87, -0.58, 0.64), "c": -0.8 + 0.156j}


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def python_counts(width: int, height: int, iterations: int, window: tuple[float, ...],
                  c: complex, rows: range | None = None) -> list[int]:
    """The original worker's loop, pixel by pixel, in plain Python."""
    xa, xb, ya, yb = window
    out = []
    for y in range(height) if rows is None else rows:
        zy = y * (yb - ya) / (height - 1) + ya
        for x in range(width):
            zx = x * (xb - xa) / (width - 1) + xa
            z = zx + zy * 1j
            for i in range(iterations):  # noqa: B007
                if abs(z) > 2.0:
                    break
                z = z * z + c
            out.append(i)
    return out


def engine_counts(case: dict, threads: int | None = None) -> np.ndarray:
    counts, _ = kernel.escape_counts(case["width"], case["height"], case["iterations"],
                                     *case["window"], case["c"], 0, case["height"],
                                     threads=threads)
    return counts


def speed(quick: bool) -> None:
    print("== 1. speed: 748x844, 512 iterations, xa=-1.5 xb=1.5 ya=-1 yb=1, "
          "c=-0.8+0.156i ==")
    counts = engine_counts(SPEED)
    passes = int(counts.astype(np.int64).sum()) + counts.size
    runs = 7 if quick else 25
    threads = kernel.available_threads()
    engine_all = median_seconds(lambda: engine_counts(SPEED), runs)
    engine_one = median_seconds(lambda: engine_counts(SPEED, threads=1), runs)
    py_runs = 1 if quick else 3
    python = median_seconds(lambda: python_counts(SPEED["width"], SPEED["height"],
                                                  SPEED["iterations"], SPEED["window"],
                                                  SPEED["c"]), py_runs)
    sample = range(400, 404)
    same = np.array_equal(
        np.array(python_counts(SPEED["width"], SPEED["height"], SPEED["iterations"],
                               SPEED["window"], SPEED["c"], sample)).reshape(len(sample), -1),
        counts[sample.start:sample.stop])
    print(f"escape iterations (loop passes): {passes:,}")
    print(f"pure Python: median {python:.3f} s over {py_runs} run(s)")
    print(f"engine, {threads} thread(s): median {engine_all * 1e3:.2f} ms over {runs} runs"
          f" -> {passes / engine_all / 1e9:.2f} iterations/ns")
    print(f"engine, 1 thread: median {engine_one * 1e3:.2f} ms"
          f" -> {passes / engine_one / 1e9:.2f} iterations/ns")
    print(f"ratio pure Python / engine: {python / engine_all:,.0f}x")
    print(f"rows 400-403 identical to the pure-Python loop: {same}")


def encoders(rgb: np.ndarray) -> list[tuple[str, Callable[[], bytes]]]:
    """The deflate candidates installed here, each on the same Up-filtered scanlines."""
    filtered = png.filter_up(rgb, None)

    def pillow(level: int) -> Callable[[], bytes]:
        def run() -> bytes:
            out = io.BytesIO()
            Image.fromarray(rgb).save(out, "PNG", compress_level=level)
            return out.getvalue()
        return run

    found = [("Pillow level 6 (default)", pillow(6)), ("Pillow level 1", pillow(1)),
             ("engine (" + png.DEFLATE_NAME + ", Up filter)", lambda: png.encode(rgb)),
             ("Up + stdlib zlib 1", lambda: zlib.compress(filtered, 1)),
             ("Up + stdlib zlib 6", lambda: zlib.compress(filtered, 6))]
    try:
        from isal import isal_zlib
        found.append(("Up + isal 2", lambda: isal_zlib.compress(filtered, 2)))
    except ImportError:
        pass
    try:
        import deflate
        found.append(("Up + libdeflate 3", lambda: deflate.zlib_compress(filtered, 3)))
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng
        found.append(("Up + zlib-ng 2", lambda: zlib_ng.compress(filtered, 2)))
    except ImportError:
        pass
    return found


def seed_like(quick: bool) -> None:
    print("\n== 2. seed-like task: 748x844, 512 iterations, xa=-3.07 xb=3.87 ya=-0.58 "
          "yb=0.64, c=-0.8+0.156i ==")
    spec = FractalSpec(748, 844, 512, *SEED_LIKE["window"], c=SEED_LIKE["c"])
    render_png(spec)
    runs = 9 if quick else 41
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        result = render_png(spec)
        results.append((time.perf_counter() - started, result))
    total = statistics.median(t for t, _ in results)
    for name in ("render", "colour", "encode", "thumbnail"):
        value = statistics.median(getattr(r, f"{name}_seconds") for _, r in results)
        print(f"{name:>9}: median {value * 1e3:6.2f} ms")
    core = statistics.median(r.render_seconds + r.colour_seconds + r.encode_seconds
                             for _, r in results)
    best = min(r.render_seconds + r.colour_seconds + r.encode_seconds for _, r in results)
    print(f"render + colour + encode: median {core * 1e3:.2f} ms, best {best * 1e3:.2f} ms "
          f"(target <= 45 ms, stretch <= 25 ms); whole render_png call median "
          f"{total * 1e3:.2f} ms")
    result = results[0][1]
    rgb = np.asarray(Image.open(io.BytesIO(result.png)))
    print(f"PNG {len(result.png):,} bytes, thumbnail {len(result.thumbnail_png):,} bytes")
    print("encoders on the same pixels (encode only):")
    reference = None
    for name, encode in encoders(rgb):
        data = encode()
        reference = reference or len(data)
        seconds = median_seconds(encode, 5 if quick else 15)
        print(f"  {name:<34} {seconds * 1e3:7.2f} ms {len(data):>9,} bytes "
              f"{len(data) / reference:5.2f}x Pillow default")


CHILD_FIRST = textwrap.dedent("""
    import time
    t = time.perf_counter()
    from faafo.engine import FractalSpec, render_png
    render_png(FractalSpec(64, 48, 32, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j))
    render_png(FractalSpec(64, 48, 32, -1.5, 1.5, -1.0, 1.0, kind="mandelbrot",
                           palette="ultra"))
    print(time.perf_counter() - t)
""")

CHILD_BIG = textwrap.dedent("""
    import json, os, resource, sys, time
    from faafo.engine import FractalSpec, render_png, write_png
    render_png(FractalSpec(64, 64, 16, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    side, its = int(sys.argv[1]), int(sys.argv[2])
    spec = FractalSpec(side, side, its, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j)
    t = time.perf_counter()
    with open(sys.argv[3], "wb") as out:
        r = write_png(spec, out)
    print(json.dumps({"seconds": time.perf_counter() - t, "size": r.size,
                      "render": r.render_seconds, "colour": r.colour_seconds,
                      "encode": r.encode_seconds, "thumbnail": r.thumbnail_seconds,
                      "base_mib": base / 1024,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""")


def compile_cost() -> None:
    print("\n== 3. compile cost (julia + mandelbrot + colours, fresh process) ==")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("empty cache (compile)", "warm cache (load)"):
            out = subprocess.run([sys.executable, "-c", CHILD_FIRST], env=env, check=True,
                                 capture_output=True, text=True).stdout
            print(f"first renders with {label}: {float(out):.2f} s (includes imports)")


def big(quick: bool) -> None:
    side, its = (4000, 256) if quick else (10000, 256)
    print(f"\n== 4. {side}x{side}, {its} iterations, write_png to a file ==")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.png")
        out = subprocess.run([sys.executable, "-c", CHILD_BIG, str(side), str(its), path],
                             check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    print(f"{r['seconds']:.2f} s (render {r['render']:.2f}, colour {r['colour']:.2f}, "
          f"encode {r['encode']:.2f}, thumbnail {r['thumbnail']:.2f}), {r['size']:,} bytes")
    print(f"peak memory {r['peak_mib']:.0f} MiB (process after loading the engine: "
          f"{r['base_mib']:.0f} MiB; target < 1024 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions, one pure-Python run, 4000x4000 not 10000x10000")
    args = parser.parse_args()
    print(f"CPUs available: {kernel.available_threads()}; kernel lanes {kernel.LANES}, "
          f"unroll {kernel.UNROLL}; deflate: {png.DEFLATE_NAME}; "
          f"palette table sizes {len(colour.faafo_table())}/{colour.GRADIENT_SIZE}\n")
    speed(args.quick)
    seed_like(args.quick)
    compile_cost()
    big(args.quick)


if __name__ == "__main__":
    main()
