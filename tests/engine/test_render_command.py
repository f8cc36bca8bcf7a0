"""``faafo render``: local rendering from the command line, one-line errors."""

from __future__ import annotations

import argparse
import io
import os
import stat
import subprocess
import sys
import threading

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
    (["--width", "0"], "width must be in 1.."),
    (["--iterations", "-5"], "iterations"),
    (["--xa", "nan"], "xa must be finite"),
    (["--c-real", "0.3"], "--c-real and --c-imag must be given together"),
    (["--c-real", "0.3", "--c-imag", "0.1", "--seed", "3"], "not both"),
    (["--kind", "mandelbrot", "--seed", "3"], "julia only"),
    (["--threads", "0"], "--threads"),
    (["--seed", "-3"], "--seed must be >= 0"),
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


def _limited(address_space: int | None = None, file_size: int | None = None):
    """preexec_fn: caps for the child, so a regression fails the test, not the machine."""
    import resource

    def apply() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return apply


@pytest.mark.parametrize(("size", "message"), [
    (["--width", "3000000000", "--height", "1"], "width must be in 1..1048576"),
    (["--width", "1", "--height", "3000000000"], "height must be in 1..1048576"),
    (["--width", str(2**20 + 1), "--height", "1"], "width must be in 1..1048576"),
])
def test_over_large_sides_are_refused_before_anything_is_allocated(size, message, tmp_path):
    # The command: it was OOM-killed at 19.5 GB and left an empty c.png. Under a
    # 2 GiB address-space cap a regression shows as a failure here, not on the machine.
    done = subprocess.run([sys.executable, "-m", "faafo.client.cli", "render", *size,
                           "--iterations", "1", "-o", "c.png"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited(address_space=2 << 30))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "no output file, not even an empty one"


def test_a_write_failing_midway_leaves_the_old_file_and_no_partial_one(tmp_path):
    from faafo.engine.warmup import warm_up

    warm_up()  # the kernels' disk cache is written here, not under the child's file cap
    out = tmp_path / "julia.png"
    out.write_bytes(b"the previous image")
    # A real failure in the middle of the PNG: the file-size cap makes write() fail
    # with EFBIG once 64 KiB are written (Python ignores SIGXFSZ).
    done = subprocess.run([sys.executable, "-m", "faafo.client.cli", "render", "--width",
                           "1500", "--height", "1500", "--iterations", "64", "--seed", "5",
                           "-o", str(out)], capture_output=True, text=True, timeout=300,
                          preexec_fn=_limited(file_size=64 << 10))
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot write" in done.stderr, done.stderr
    assert "File too large" in done.stderr and "Traceback" not in done.stderr
    assert out.read_bytes() == b"the previous image"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["julia.png"], "temporary file removed"


@pytest.mark.parametrize(("error", "message"), [
    (MemoryError(), "not enough memory to render 64x48"),
    (ValueError("PNG sides must be\n1..2**31-1"), "render failed: PNG sides must be 1..2**31-1"),
    (OSError(28, "No space left on device"), "No space left on device"),
])
def test_render_errors_are_one_line_and_leave_no_file(error, message, tmp_path, monkeypatch,
                                                      capsys):
    def failing_write_png(spec, out, *, threads=None):
        out.write(b"\x89PNG half an image")
        raise error

    monkeypatch.setattr(render, "write_png", failing_write_png)
    out = tmp_path / "x.png"
    assert render.run(parse("--width", "64", "--height", "48", "-o", str(out))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_file_appears_complete_with_ordinary_permissions(tmp_path, capsys):
    out = tmp_path / "j.png"
    seen: list[bool] = []
    real_write_png = render.write_png

    def watching_write_png(spec, handle, *, threads=None):
        result = real_write_png(spec, handle, threads=threads)
        seen.append(out.exists())  # everything written, not yet renamed
        return result

    previous = os.umask(0o027)
    try:
        render.write_png = watching_write_png
        assert render.run(parse("--width", "40", "--height", "30", "-o", str(out))) == 0
    finally:
        render.write_png = real_write_png
        os.umask(previous)
    assert seen == [False], "the target only appears once the image is complete"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640, "what open() would give under umask 027"
    assert Image.open(out).size == (40, 30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.png"]


def test_a_fifo_target_is_written_not_replaced(tmp_path):
    # Renaming over a target that is not a regular file would replace it (for /dev/null,
    # as root, the machine's). A FIFO shows both sides: it must stay and get the PNG.
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    done = subprocess.run([sys.executable, "-m", "faafo.client.cli", "render", "--width", "16",
                           "--height", "16", "--seed", "1", "-o", str(fifo)],
                          capture_output=True, text=True, timeout=120)
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO itself is still there"
    assert received and Image.open(io.BytesIO(received[0])).size == (16, 16)
