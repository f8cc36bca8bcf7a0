"""Loading the compiled kernels before the first task, so that no task pays for it.

The first call of a numba kernel in a process either loads its machine code from the
on-disk cache (about 0.35 s for all of them) or, when the cache has nothing usable,
compiles it (a few seconds). A worker that did this inside its first task reported that
task as several times slower than the next one. :func:`warm_up` renders two tiny images
through the very pipeline the real renders use, so every kernel is ready, with the same
argument types, before the worker takes a message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from faafo.engine.render import render_png
from faafo.engine.spec import FractalSpec

# Tiny, but through every kernel: Julia + smooth colours, Mandelbrot + the reference
# colours, and the thumbnail's box sums (made for every whole image).
_SPECS = (
    FractalSpec(8, 8, 4, -1.5, 1.5, -1.0, 1.0, kind="julia", palette="ultra", c=-0.8 + 0.156j),
    FractalSpec(8, 8, 4, -2.0, 1.0, -1.0, 1.0, kind="mandelbrot", palette="faafo"),
)


@dataclass(frozen=True)
class KernelCache:
    """How one kernel got its machine code in this process, so far."""

    hits: int
    misses: int


@dataclass(frozen=True)
class WarmUp:
    """What :func:`warm_up` did: its duration and, per kernel, cache hits and misses.

    A miss means the kernel was compiled here because the on-disk cache had no usable
    entry; on a machine that rendered before, every kernel should be a hit.
    """

    seconds: float
    kernels: dict[str, KernelCache] = field(default_factory=dict)

    @property
    def cache_hits(self) -> int:
        return sum(k.hits for k in self.kernels.values())

    @property
    def cache_misses(self) -> int:
        return sum(k.misses for k in self.kernels.values())


def cached_kernels() -> dict[str, object]:
    """Every numba kernel of the engine that is cached on disk, by name (imports numba)."""
    from faafo.engine import boxsum, colour, kernel

    return {
        "julia": kernel._julia_task,
        "mandelbrot": kernel._mandelbrot_task,
        "colour_counts": colour._colour_counts,
        "colour_smooth": colour._colour_smooth,
        "box_sums": boxsum.add_box_sums,
    }


def kernel_cache_stats() -> dict[str, KernelCache]:
    """Cache hits and misses of each kernel in this process so far."""
    stats = {}
    for name, dispatcher in cached_kernels().items():
        counters = dispatcher.stats  # type: ignore[attr-defined]
        stats[name] = KernelCache(
            hits=sum(counters.cache_hits.values()), misses=sum(counters.cache_misses.values())
        )
    return stats


def warm_up() -> WarmUp:
    """Make every kernel ready (loaded from the disk cache, or compiled and cached).

    Idempotent and cheap once done (two 8x8 renders). Call it once at start-up.
    """
    started = time.perf_counter()
    for spec in _SPECS:
        render_png(spec, threads=1)
    return WarmUp(seconds=time.perf_counter() - started, kernels=kernel_cache_stats())
