"""What to render: the task's parameters, checked once so the kernels can trust them."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("julia", "mandelbrot")
PALETTES: tuple[str, ...] = ("faafo", "ultra", "fire", "ocean")
# Escape counts are stored as int32.
MAX_ITERATIONS = 2**31 - 1
# The widest (or tallest) image anything here will attempt. Rendering holds a few
# rows of escape counts, colours and PNG scanlines at once (about 23 bytes per pixel
# of a row), so a side of 2**20 still fits in a few tens of MiB, where a side of
# 3 000 000 000 asked for tens of GiB before the first pixel.
MAX_SIDE = 2**20
# Seeds the API accepts (a signed 64-bit column); never negative.
MAX_SEED = 2**63 - 1


def _int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


@dataclass(frozen=True)
class FractalSpec:
    """One image: size, iteration budget, window, and what to draw with which colours.

    The window maps column 0 to ``xa`` and the last column to ``xb``, row 0 (the top) to
    ``ya`` and the last row to ``yb``; ``xa > xb`` or ``ya > yb`` mirror the image.
    For a Julia set, ``c`` is the constant; when it is None, ``seed`` picks it with the
    reference rule (see ``faafo.engine.constant``), deterministically when a seed is
    given. Invalid values raise ``ValueError`` with a one-line message.
    """

    width: int
    height: int
    iterations: int
    xa: float
    xb: float
    ya: float
    yb: float
    kind: str = "julia"
    palette: str = "faafo"
    c: complex | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        fix = object.__setattr__
        fix(self, "width", _int("width", self.width, 1, MAX_SIDE))
        fix(self, "height", _int("height", self.height, 1, MAX_SIDE))
        fix(self, "iterations", _int("iterations", self.iterations, 0, MAX_ITERATIONS))
        for name in ("xa", "xb", "ya", "yb"):
            fix(self, name, _float(name, getattr(self, name)))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.palette not in PALETTES:
            raise ValueError(f"palette must be one of {', '.join(PALETTES)}, got {self.palette!r}")
        if self.c is not None:
            if isinstance(self.c, bool) or not isinstance(self.c, numbers.Complex):
                raise ValueError(f"c must be a complex number, got {self.c!r}")
            c = complex(self.c)
            if not (math.isfinite(c.real) and math.isfinite(c.imag)):
                raise ValueError(f"c must be finite, got {c}")
            fix(self, "c", c)
        if self.seed is not None:
            # random.Random(-s) draws what Random(s) draws: a negative seed would alias.
            fix(self, "seed", _int("seed", self.seed, 0, MAX_SEED))
