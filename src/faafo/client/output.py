"""Tables as users of the original know them (list: UUID | Dimensions | Filesize)."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def console() -> Console:
    return Console(soft_wrap=False, width=200 if not sys.stdout.isatty() else None)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def list_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("UUID", "Dimensions", "Filesize", "Status")
    for row in rows:
        size = f"{row['size']} bytes" if row.get("size") is not None else "-"
        table.add_row(row["uuid"], f"{row['width']} x {row['height']} pixels", size, row["status"])
    return table


def show_table(row: dict[str, Any]) -> Table:
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
