"""``faafo render``: render a fractal to a PNG file locally, with no service running.

Uses only ``faafo.engine``. Prints the Julia constant ``c`` that was used (so the image
can be reproduced with ``--c-real/--c-imag``) and the time spent. Bad arguments (sides
over the engine's ``MAX_SIDE`` included) give one line on stderr and exit status 2,
before anything is allocated or written; a render or write that fails (no memory, disk
full, unwritable directory) gives one line and exit status 1.

The file appears only when complete: the PNG is written to a temporary file in the
same directory and renamed over the target at the end, so a failure or Ctrl-C never
leaves a partial (or truncated former) image behind. ``-o -`` writes to standard
output instead. Also runnable as ``python -m faafo.client.render [options]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import NoReturn

from faafo.client.output import open_image
from faafo.engine import KINDS, PALETTES, FractalSpec, resolve_c, write_png

DEFAULTS = {
    "width": 1024,
    "height": 768,
    "iterations": 256,
    "xa": -1.6,
    "xb": 1.6,
    "ya": -1.2,
    "yb": 1.2,
}
DESCRIPTION = (
    "Render a Julia (default) or Mandelbrot set to a PNG file on this machine. "
    "Without --c-real/--c-imag the Julia constant is chosen by the original "
    "faafo rule, reproducibly when --seed is given."
)


def _fail(prog: str, message: str) -> NoReturn:
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``render`` options, on any parser."""
    size = parser.add_argument_group("image")
    size.add_argument(
        "--width",
        type=int,
        default=DEFAULTS["width"],
        metavar="PIXELS",
        help="image width (default %(default)s)",
    )
    size.add_argument(
        "--height",
        type=int,
        default=DEFAULTS["height"],
        metavar="PIXELS",
        help="image height (default %(default)s)",
    )
    size.add_argument(
        "--iterations",
        type=int,
        default=DEFAULTS["iterations"],
        metavar="N",
        help="maximum escape iterations (default %(default)s)",
    )
    window = parser.add_argument_group(
        "window (real axis xa..xb, imaginary axis ya..yb from the top row down)"
    )
    for name in ("xa", "xb", "ya", "yb"):
        window.add_argument(
            f"--{name}", type=float, default=DEFAULTS[name], metavar="X", help="default %(default)s"
        )
    fractal = parser.add_argument_group("fractal")
    fractal.add_argument("--kind", choices=KINDS, default="julia", help="default %(default)s")
    fractal.add_argument(
        "--palette",
        choices=PALETTES,
        default="faafo",
        help="colours; faafo is the original's (default %(default)s)",
    )
    fractal.add_argument(
        "--c-real", type=float, metavar="R", help="real part of the Julia constant (with --c-imag)"
    )
    fractal.add_argument(
        "--c-imag",
        type=float,
        metavar="I",
        help="imaginary part of the Julia constant (with --c-real)",
    )
    fractal.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="choose the Julia constant reproducibly from this seed",
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="render threads (default: all CPUs)"
    )
    parser.add_argument(
        "-o",
        "--output",
        default="fractal.png",
        metavar="FILE",
        help="PNG file to write, - for standard output (default %(default)s)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers the ``render`` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "render", help="render a fractal to a PNG file locally", description=DESCRIPTION
    )
    add_arguments(parser)
    # One line, no usage dump, for bad option values of this subcommand.
    parser.error = lambda message: _fail(parser.prog, message)  # type: ignore[method-assign]
    parser.set_defaults(run=run)


def spec_from_args(args: argparse.Namespace) -> FractalSpec:
    """The FractalSpec the options describe; ValueError with a one-line reason if none."""
    has_real, has_imag = args.c_real is not None, args.c_imag is not None
    if has_real != has_imag:
        raise ValueError("--c-real and --c-imag must be given together")
    c = complex(args.c_real, args.c_imag) if has_real else None
    if c is not None and args.seed is not None:
        raise ValueError("give either --c-real/--c-imag or --seed, not both")
    if args.kind != "julia" and (c is not None or args.seed is not None):
        raise ValueError("--c-real/--c-imag/--seed apply to --kind julia only")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.seed is not None and args.seed < 0:
        # random.Random(-3) is Random(3): refused, as the API refuses it.
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    return FractalSpec(
        width=args.width,
        height=args.height,
        iterations=args.iterations,
        xa=args.xa,
        xb=args.xb,
        ya=args.ya,
        yb=args.yb,
        kind=args.kind,
        palette=args.palette,
        c=c,
        seed=args.seed,
    )


def _describe_c(c: complex | None) -> str:
    if c is None:
        return "c: none (mandelbrot: c is each pixel)"
    return (
        f"c: {c.real!r} {'-' if c.imag < 0 else '+'} {abs(c.imag)!r}i "
        f"(reproduce with --c-real {c.real!r} --c-imag {c.imag!r})"
    )


def run(args: argparse.Namespace) -> int:
    """Renders as the parsed options say; returns the exit status."""
    prog = "faafo render"
    try:
        spec = spec_from_args(args)
    except ValueError as error:
        sys.stderr.write(f"{prog}: error: {error}\n")
        return 2
    info = sys.stderr if args.output == "-" else sys.stdout
    unwritten = "" if args.output == "-" else f"; {args.output} was not written"
    # Resolve c first, so the file's constant is the one printed even for a random c.
    spec = dataclasses.replace(spec, c=resolve_c(spec))
    started = time.perf_counter()
    try:
        # As ``faafo get`` writes: "-" is stdout; a file appears only once complete.
        with open_image(args.output) as out:
            result = write_png(spec, out, threads=args.threads)
    except OSError as error:
        sys.stderr.write(f"{prog}: error: cannot write {args.output}: {error.strerror or error}\n")
        return 1
    except MemoryError:
        size = f"{spec.width}x{spec.height}"
        sys.stderr.write(f"{prog}: error: not enough memory to render {size}{unwritten}\n")
        return 1
    except ValueError as error:
        reason = " ".join(str(error).split())
        sys.stderr.write(f"{prog}: error: render failed: {reason}{unwritten}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted{unwritten}\n")
        return 130
    elapsed = time.perf_counter() - started
    print(_describe_c(result.c), file=info)
    print(
        f"rendered {spec.width}x{spec.height}, {spec.iterations} iterations, "
        f"{spec.kind}/{spec.palette} in {elapsed:.3f} s (render {result.render_seconds:.3f}"
        f" s, colour {result.colour_seconds:.3f} s, encode {result.encode_seconds:.3f} s)"
        f" -> {args.output} ({result.size} bytes)",
        file=info,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m faafo.client.render``: the subcommand's options, without ``render``."""
    parser = argparse.ArgumentParser(prog="faafo render", description=DESCRIPTION)
    add_arguments(parser)
    parser.error = lambda message: _fail(parser.prog, message)  # type: ignore[method-assign]
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
