"""The rendering engine: the original faafo's fractal pixels, exact and at compiled speed.

Public API (the worker, the API and ``faafo render`` use only these names):

- ``FractalSpec``: what to render; ``KINDS`` and ``PALETTES``: the accepted values.
- ``choose_c`` / ``resolve_c``: the Julia constant, reproducible from a seed.
- ``render_png``: a whole image, or a band of rows of it, as PNG bytes + thumbnail.
- ``write_png``: a whole image straight into a file with bounded memory.
- ``plan_bands``, ``assemble_png``, ``assemble_thumbnail``, ``write_assembled_png``:
  split a huge task into bands that several workers render, and join their PNGs into
  the one image (and its thumbnail).

Modules: ``spec`` (parameters), ``constant`` (c), ``kernel`` (numba escape counts),
``colour`` (palettes), ``png`` (encoder), ``thumbnail``, ``render`` (pipeline),
``bands`` (split and join), ``warmup`` (load every kernel ahead of the first task).
Importing this package does not import numba; the kernels are compiled (or loaded from
the on-disk cache) on the first render, or by ``warmup.warm_up()``.
"""

from faafo.engine.bands import (
    AssembledPng,
    assemble_png,
    assemble_thumbnail,
    plan_bands,
    write_assembled_png,
)
from faafo.engine.constant import choose_c, resolve_c
from faafo.engine.render import RenderResult, WriteResult, render_png, write_png
from faafo.engine.spec import KINDS, PALETTES, FractalSpec

__all__ = [
    "KINDS",
    "PALETTES",
    "AssembledPng",
    "FractalSpec",
    "RenderResult",
    "WriteResult",
    "assemble_png",
    "assemble_thumbnail",
    "choose_c",
    "plan_bands",
    "render_png",
    "resolve_c",
    "write_assembled_png",
    "write_png",
]
