"""``faafo render``: local rendering from the command line, one-line errors."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from faafo.client import render
from faafo.engine import FractalSpec, render_png


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="faafo")
    render.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["render", *argv])


def test_renders_the_requested_image(tmp_path, capsys):
    out = tmp_path / "julia.png"
    args = parse("--width", "120", "--height", "80", "--iterations", "64", "--xa", "-1.5",
                 "--xb", "1.5", "--ya", "-1", "--yb", "1", "--c-real", "-0.8",
                 "--c-imag", "0.156", "-o", str(out))
    assert args.run is render.run
    assert render.run(args) == 0
    printed = capsys.readouterr().out
    assert "c: -0.8 + 0.156i" in printed and "rendered 120x80" in printed
    spec = FractalSpec(120, 80, 64, -1.5, 1.5, -1.0, 1.0, c=-0.8 + 0.156j)
    expected = np.asarray(Image.open(io.BytesIO(render_png(spec).png)))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


def test_seed_is_reproducible_and_printed_c_reproduces_it(tmp_path, capsys):
    first, second, third = (tmp_path / f"{n}.png" for n in "abc")
    for path in (first, second):
        assert render.run(parse("--width", "64", "--height", "48", "--seed", "7",
                                "-o", str(path))) == 0
    line = capsys.readouterr().out.splitlines()[0]
    real = line.split("--c-real ")[1].split()[0]
    imag = line.split("--c-imag ")[1].rstrip(")")
    assert render.run(parse("--width", "64", "--height", "48", "--c-real", real,
                            "--c-imag", imag, "-o", str(third))) == 0
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()


def test_mandelbrot_with_a_smooth_palette(tmp_path, capsys):
    out = tmp_path / "m.png"
    assert render.run(parse("--kind", "mandelbrot", "--palette", "ultra", "--width", "90",
                            "--height", "60", "--xa", "-2.2", "--xb", "0.8", "-o",
                            str(out))) == 0
    assert "mandelbrot" in capsys.readouterr().out
    assert Image.open(out).size == (90, 60)


@pytest.mark.parametrize(("argv", "message"), [
    (["--width", "0"], "width must be >= 1"),
    (["--iterations", "-5"], "iterations"),
    (["--xa", "nan"], "xa must be finite"),
    (["--c-real", "0.3"], "--c-real and --c-imag must be given together"),
    (["--c-real", "0.3", "--c-imag", "0.1", "--seed", "3"], "not both"),
    (["--kind", "mandelbrot", "--seed", "3"], "julia only"),
    (["--threads", "0"], "--threads"),
])
def test_bad_values_give_one_line(argv, message, tmp_path, capsys):
    assert render.run(parse(*argv, "-o", str(tmp_path / "x.png"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--width", "wide"], ["--kind", "newton"],
                                  ["--palette", "plaid"], ["--seed", "1.5"]])
def test_unparsable_options_give_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(*argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_unwritable_output(tmp_path, capsys):
    assert render.run(parse("--width", "8", "--height", "8",
                            "-o", str(tmp_path / "missing" / "x.png"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write" in err


def test_python_dash_m(tmp_path):
    out = tmp_path / "m.png"
    done = subprocess.run([sys.executable, "-m", "faafo.client.render", "--width", "50",
                           "--height", "40", "--seed", "1", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "c: " in done.stdout and Image.open(out).size == (50, 40)
    bad = subprocess.run([sys.executable, "-m", "faafo.client.render", "--height", "0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


def test_standard_output(tmp_path):
    done = subprocess.run([sys.executable, "-m", "faafo.client.render", "--width", "30",
                           "--height", "20", "--seed", "2", "-o", "-"],
                          capture_output=True, timeout=120)
    assert done.returncode == 0
    assert Image.open(io.BytesIO(done.stdout)).size == (30, 20)
    assert b"c: " in done.stderr


def test_imports_no_server_code():
    code = ("import sys, faafo.client.render; "
            "bad = [m for m in sys.modules if m.startswith(('faafo.api', 'faafo.worker', "
            "'faafo.store', 'faafo.messaging', 'fastapi', 'sqlalchemy', 'kombu'))]; "
            "print(bad)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
