"""``faafo``: the command-line client (create, list, show, get, delete) and local tools.

Every error ends as one line on stderr and a non-zero exit code, never a
traceback: an unreachable endpoint, an unknown uuid, a refused parameter.
Results go to stdout and progress to stderr, so ``faafo create | xargs`` works.

The endpoint comes from ``--endpoint-url``, else ``FAAFO_ENDPOINT_URL``, else
``endpoint_url`` in the INI file (``--config-file``, or ``/etc/faafo/faafo.conf``
when present; ``[DEFAULT]`` overridden by ``[client]``), else the default.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
import uuid as uuidlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faafo import config
from faafo.client import output
from faafo.client.http import ClientError, FaafoClient
from faafo.client.random_tasks import (
    RANDOM_RANGES,
    TASK_COUNT_RANGE,
    TaskOptions,
    task_chunks,
    task_count,
)
from faafo.config import OneLineArgumentParser

DEFAULT_ENDPOINT = config.DEFAULT_ENDPOINT_URL
INI_SECTION = "client"
REQUEST_CHUNK = 500
STATUSES = ("queued", "running", "done", "failed")
log = logging.getLogger("faafo.client")


class UsageError(Exception):
    """A bad argument: one line and exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """``faafo`` and its commands; the common options work before or after the command."""
    common = OneLineArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        help=f"API URL (env FAAFO_ENDPOINT_URL; default {DEFAULT_ENDPOINT})",
    )
    common.add_argument(
        "--config-file",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"INI file with endpoint_url in [DEFAULT] or [{INI_SECTION}] "
        f"(default: {config.DEFAULT_CONFIG_FILE} when present)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
    )
    common.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    parser = OneLineArgumentParser(prog="faafo", description="The Fractals app.", parents=[common])
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    commands.required = True

    create = commands.add_parser("create", parents=[common], help="create fractal tasks")
    create.add_argument("--tasks", type=_positive_int, help="number of tasks (default: random)")
    create.add_argument("--min-tasks", type=_positive_int, default=TASK_COUNT_RANGE[0])
    create.add_argument("--max-tasks", type=_positive_int, default=TASK_COUNT_RANGE[1])
    for name, (low, high) in RANDOM_RANGES.items():
        kind = _positive_int if name in ("width", "height", "iterations") else _finite_float
        create.add_argument(f"--{name}", type=kind, help=f"(default: random {low} .. {high})")
        create.add_argument(f"--min-{name}", type=kind, default=low)
        create.add_argument(f"--max-{name}", type=kind, default=high)
    create.add_argument("--kind", help="julia (default) or mandelbrot")
    create.add_argument("--palette", help="colour palette (default faafo)")
    create.add_argument("--c-real", type=_finite_float, help="Julia constant, real part")
    create.add_argument("--c-imag", type=_finite_float, help="Julia constant, imaginary part")
    create.add_argument("--seed", type=int, help="chooses c reproducibly")
    create.add_argument(
        "--wait",
        action="store_true",
        help="show progress until all finish; exit 1 if any failed",
    )

    listing = commands.add_parser("list", parents=[common], help="list all fractals")
    listing.add_argument("--status", choices=STATUSES, help="only fractals in this state")
    listing.add_argument("--batch", help="only the tasks of this batch (as 'faafo create' makes)")
    listing.add_argument("--generated-by", help="only the fractals this worker rendered")
    show = commands.add_parser("show", parents=[common], help="show one fractal")
    show.add_argument("uuid")
    get = commands.add_parser("get", parents=[common], help="download a fractal's PNG")
    get.add_argument("uuid")
    get.add_argument(
        "-o",
        "--output",
        help="file to write, a directory to write UUID.png in, or - for stdout (default UUID.png)",
    )
    delete = commands.add_parser("delete", parents=[common], help="delete a fractal")
    delete.add_argument("uuid")

    from faafo.launcher.cli import add_parser as add_up_parser

    add_up_parser(commands)
    from faafo.autoscale.cli import add_parser as add_autoscale_parser

    add_autoscale_parser(commands)
    from faafo.deploy.cli import add_parser as add_deploy_parser

    add_deploy_parser(commands)
    from faafo.client import render

    render.add_parser(commands)
    return parser


def _options(args: argparse.Namespace) -> TaskOptions:
    """What ``create``'s flags fix, and the bounds of what they leave random."""
    fixed = {name: getattr(args, name) for name in RANDOM_RANGES}
    bounds = {
        name: (getattr(args, f"min_{name}"), getattr(args, f"max_{name}")) for name in RANDOM_RANGES
    }
    if (args.c_real is None) != (args.c_imag is None):
        raise UsageError("give both --c-real and --c-imag, or neither")
    extra = {
        "kind": args.kind,
        "palette": args.palette,
        "c_real": args.c_real,
        "c_imag": args.c_imag,
        "seed": args.seed,
    }
    return TaskOptions(fixed=fixed, bounds=bounds, extra=extra)


def cmd_create(client: FaafoClient, args: argparse.Namespace) -> int:
    """Create the tasks; their uuids on stdout (JSON with --json), progress on stderr."""
    options = _options(args)
    rng = random.Random()
    count = task_count(args.tasks, args.min_tasks, args.max_tasks, rng)
    batch = str(uuidlib.uuid4())
    created: list[dict[str, Any]] = []
    for index, chunk in enumerate(task_chunks(options, count, rng, batch, REQUEST_CHUNK)):
        created += client.create(chunk)
        if index == 0 and not args.json:
            # After the first request is accepted, so a refusal stays a single line.
            print(f"generating {count} task(s)", file=sys.stderr)
    if not args.json:
        for row in created:
            print(row["uuid"])
        sys.stdout.flush()
    failed = _wait(client, batch, count, quiet=args.json) if args.wait else 0
    if args.json:
        if args.wait:
            latest = {row["uuid"]: row for row in client.iter_all(batch=batch)}
            created = [latest.get(row["uuid"], row) for row in created]
        output.print_json({"batch": batch, "objects": created})
    return 1 if failed else 0


def _wait(client: FaafoClient, batch: str, total: int, quiet: bool) -> int:
    """Poll the batch until every task is done or failed; the number that failed.

    The bar and the summary go to stderr: stdout carries only the results.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar_console = Console(stderr=True)
    with Progress(*columns, console=bar_console, disable=quiet, transient=False) as progress:
        bar = progress.add_task("rendering", total=total)
        while True:
            status = client.batch(batch)
            counts = status["counts"]
            finished = counts.get("done", 0) + counts.get("failed", 0)
            progress.update(bar, completed=finished)
            if status["finished"]:
                break
            time.sleep(0.25)
    failed = counts.get("failed", 0)
    if not quiet:
        elapsed = time.monotonic() - started
        print(
            f"{counts.get('done', 0)} done, {failed} failed in {elapsed:.1f} s",
            file=sys.stderr,
        )
        if failed:
            for row in client.iter_all(batch=batch, status="failed"):
                print(f"failed: {row['uuid']}: {row.get('error')}", file=sys.stderr)
    return failed


def cmd_list(client: FaafoClient, args: argparse.Namespace) -> int:
    """Every fractal (all pages), optionally only one status, batch or worker's."""
    if not args.json:
        log.info("listing all fractals")
    rows = list(
        client.iter_all(status=args.status, batch=args.batch, generated_by=args.generated_by)
    )
    if args.json:
        output.print_json(rows)
    else:
        output.console().print(output.list_table(rows))
    return 0


def _check_uuid(text: str) -> str:
    """The canonical form of a uuid argument, refused before any request when malformed."""
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        raise UsageError(f"{text!r} is not a valid UUID") from None


def cmd_show(client: FaafoClient, args: argparse.Namespace) -> int:
    """One fractal's parameters, state and timings."""
    row = client.get(_check_uuid(args.uuid))
    if args.json:
        output.print_json(row)
    else:
        output.console().print(output.show_table(row))
    return 0


def cmd_get(client: FaafoClient, args: argparse.Namespace) -> int:
    """Download a finished fractal's PNG (checksum verified) to a file, a directory or stdout."""
    uuid = _check_uuid(args.uuid)
    to_stdout = args.output == output.STDOUT
    if to_stdout and args.json:
        raise UsageError("-o - writes the PNG to stdout: leave out --json")
    if to_stdout and sys.stdout.isatty():
        raise UsageError("-o - would write a PNG to the terminal: redirect stdout")
    row = client.get(uuid)
    if row["status"] != "done":
        detail = f": {row['error']}" if row.get("error") else ""
        raise ClientError(f"fractal {uuid} is {row['status']}{detail}; no image to get")
    target = output.image_target(args.output, uuid)
    shown = "stdout" if to_stdout else str(target)
    try:
        with output.open_image(target) as out:
            size = client.download(uuid, out, row.get("checksum"))
    except OSError as error:
        raise ClientError(f"cannot write {shown}: {error.strerror or error}") from None
    if args.json:
        output.print_json({"uuid": uuid, "path": shown, "size": size, "checksum": row["checksum"]})
    else:
        print(
            f"wrote {shown} ({size} bytes, checksum verified)",
            file=sys.stderr if to_stdout else sys.stdout,
        )
    return 0


def cmd_delete(client: FaafoClient, args: argparse.Namespace) -> int:
    """Delete one fractal; "deleted" only once the API answered 2xx."""
    uuid = _check_uuid(args.uuid)
    client.delete(uuid)
    if args.json:
        output.print_json({"uuid": uuid, "deleted": True})
    else:
        print(f"deleted {uuid}")
    return 0


COMMANDS = {
    "create": cmd_create,
    "list": cmd_list,
    "show": cmd_show,
    "get": cmd_get,
    "delete": cmd_delete,
}


def ini_settings(config_file: Path | None) -> dict[str, str]:
    """The INI file's ``[DEFAULT]`` overlaid with ``[client]``; nothing without a file.

    Without ``--config-file`` the system file is read when it exists, as the
    services do, so one file can configure every faafo program on a host.
    """
    if config_file is None:
        if not config.DEFAULT_CONFIG_FILE.is_file():
            return {}
        config_file = config.DEFAULT_CONFIG_FILE
    try:
        return config.read_ini(config_file, INI_SECTION)
    except config.ConfigurationError as error:  # unreadable or not INI: one line naming it
        raise UsageError(str(error)) from None


def endpoint_of(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str:
    """The API URL: flag > FAAFO_ENDPOINT_URL > endpoint_url in the INI file > default."""
    environ = os.environ if environ is None else environ
    ini = ini_settings(getattr(args, "config_file", None))
    return (
        getattr(args, "endpoint_url", None)
        or environ.get("FAAFO_ENDPOINT_URL")
        or ini.get("endpoint_url")
        or DEFAULT_ENDPOINT
    )


def main(argv: list[str] | None = None) -> int:
    """The ``faafo`` entry point: an exit code, and any error as one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for flag in ("json", "verbose", "debug"):
        setattr(args, flag, getattr(args, flag, False))
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command in COMMANDS:
            from faafo.client import credentials

            endpoint = endpoint_of(args)
            token = os.environ.get("FAAFO_CLIENT_TOKEN") or credentials.lookup(endpoint)
            with FaafoClient(endpoint, token=token) as client:
                return COMMANDS[args.command](client, args)
        return args.run(args)
    except (ClientError, UsageError) as error:
        if args.debug:
            raise
        print(f"faafo: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
    except KeyboardInterrupt:
        print("faafo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
