"""What the CLI writes: tables as users of the original know them (list: UUID |
Dimensions | Filesize), JSON for scripts, and downloaded PNGs.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # rich is imported when a table is printed: ``faafo get`` starts faster
    from rich.console import Console
    from rich.table import Table


def console() -> Console:
    """stdout, without wrapping; 200 columns when it is not a terminal (pipes, files)."""
    from rich.console import Console

    return Console(soft_wrap=False, width=200 if not sys.stdout.isatty() else None)


def print_json(value: Any) -> None:
    """Indented JSON on stdout, for scripts (``--json``)."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def list_table(rows: list[dict[str, Any]]) -> Table:
    """``faafo list``: the original's UUID | Dimensions | Filesize, plus Status."""
    from rich.table import Table

    table = Table("UUID", "Dimensions", "Filesize", "Status")
    for row in rows:
        size = f"{row['size']} bytes" if row.get("size") is not None else "-"
        table.add_row(row["uuid"], f"{row['width']} x {row['height']} pixels", size, row["status"])
    return table


def show_table(row: dict[str, Any]) -> Table:
    """``faafo show``: the original's Parameter | Value rows, plus state, kind and timings."""
    from rich.table import Table

    table = Table("Parameter", "Value")
    c = "-"
    if row.get("c_real") is not None:
        c = f"{row['c_real']!r} {'+' if row['c_imag'] >= 0 else '-'} {abs(row['c_imag'])!r}i"
    pairs = [
        ("uuid", row["uuid"]),
        ("status", row["status"]),
        ("duration", f"{row['duration']:f} seconds" if row.get("duration") is not None else "-"),
        ("dimensions", f"{row['width']} x {row['height']} pixels"),
        ("iterations", row["iterations"]),
        ("xa", row["xa"]),
        ("xb", row["xb"]),
        ("ya", row["ya"]),
        ("yb", row["yb"]),
        ("kind", row.get("kind", "julia")),
        ("palette", row.get("palette", "faafo")),
        ("c", c),
        ("seed", row.get("seed")),
        ("size", f"{row['size']} bytes" if row.get("size") is not None else "-"),
        ("checksum", row.get("checksum")),
        ("generated_by", row.get("generated_by")),
        ("attempts", row.get("attempts")),
        ("created", row.get("created_at")),
        ("started", row.get("started_at")),
        ("finished", row.get("finished_at")),
    ]
    if row.get("error"):
        pairs.append(("error", row["error"]))
    for name, value in pairs:
        table.add_row(name, "-" if value is None else str(value))
    return table


STDOUT = "-"


def image_target(output: str | None, uuid: str) -> Path | str:
    """Where ``faafo get`` writes: ``-`` is stdout, a directory gets ``UUID.png`` inside."""
    if output is None:
        return Path(f"{uuid}.png")
    if output == STDOUT:
        return STDOUT
    path = Path(output)
    return path / f"{uuid}.png" if path.is_dir() else path


@contextmanager
def open_image(target: Path | str) -> Iterator[BinaryIO]:
    """A binary stream for ``target``; what was written is kept only if the block succeeds.

    A regular file (or a new path) is written to a temporary file beside it and
    renamed over it at the end, so a failed or corrupt download never leaves a
    half-written image, and the temporary file is removed on any failure.
    Anything else (a device, a FIFO) is written in place: renaming over it would
    replace the node with a regular file. ``-`` is stdout.
    """
    if target == STDOUT:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    try:
        existing: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with open(path, "wb") as out:
            yield out
        return
    # A symbolic link stays one: the file it points to is the one replaced.
    final = Path(os.path.realpath(path))
    temporary = final.with_name(f".{final.name}.{secrets.token_hex(4)}.part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if existing is not None:
            os.chmod(temporary, stat.S_IMODE(existing.st_mode))
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
