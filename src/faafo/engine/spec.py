"""What to render: the task's parameters, checked once so the kernels can trust them."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

KINDS: tuple[str, ...] = ("julia", "mandelbrot")
PALETTES: tuple[str, ...] = ("faafo", "ultra", "fire", "ocean")
# Escape counts are stored as int32.
MAX_ITERATIONS = 2**31 - 1


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
        fix(self, "width", _int("width", self.width, 1))
        fix(self, "height", _int("height", self.height, 1))
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
            if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
                raise ValueError(f"seed must be an integer, got {self.seed!r}")
            fix(self, "seed", int(self.seed))
