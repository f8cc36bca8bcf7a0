"""``faafo``: the command-line client (create, list, show, get, delete) and local tools.

Every error ends as one line on stderr and a non-zero exit code, never a
traceback: an unreachable endpoint, an unknown uuid, a refused parameter.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
import uuid as uuidlib
from pathlib import Path

from faafo.client.http import ClientError, FaafoClient
from faafo.client.random_tasks import RANDOM_RANGES, TaskOptions, random_task
from faafo.config import OneLineArgumentParser

DEFAULT_ENDPOINT = "http://localhost:8080"
REQUEST_CHUNK = 500
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
    common = OneLineArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint-url",
        default=argparse.SUPPRESS,
        help=f"API URL (env FAAFO_ENDPOINT_URL; default {DEFAULT_ENDPOINT})",
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
    create.add_argument("--min-tasks", type=_positive_int, default=1)
    create.add_argument("--max-tasks", type=_positive_int, default=10)
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
    create.add_argument("--wait", action="store_true", help="show progress until all finish")

    listing = commands.add_parser("list", parents=[common], help="list all fractals")
    listing.add_argument("--status", choices=("queued", "running", "done", "failed"))
    show = commands.add_parser("show", parents=[common], help="show one fractal")
    show.add_argument("uuid")
    get = commands.add_parser("get", parents=[common], help="download a fractal's PNG")
    get.add_argument("uuid")
    get.add_argument("-o", "--output", type=Path, help="file to write (default UUID.png)")
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
    render.add_parser(commands)
    commands.choices["render"].set_defaults(run=render.run)
    return parser


def _options(args: argparse.Namespace) -> TaskOptions:
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
    options = _options(args)
    rng = random.Random()
    count = args.tasks or rng.randint(
        min(args.min_tasks, args.max_tasks), max(args.min_tasks, args.max_tasks)
    )
    batch = str(uuidlib.uuid4())
    created: list[dict] = []
    for start in range(0, count, REQUEST_CHUNK):
        tasks = []
        for _ in range(min(REQUEST_CHUNK, count - start)):
            task = random_task(options, rng)
            task["uuid"] = str(uuidlib.uuid4())
            task["batch"] = batch
            tasks.append(task)
        created += client.create(tasks)
        if start == 0 and not args.json:
            # After the first request is accepted, so a refusal stays a single line.
            print(f"generating {count} task(s)", file=sys.stderr)
    failed = 0
    if args.wait:
        failed = _wait(client, batch, count, quiet=args.json)
    if args.json:
        from faafo.client.output import print_json

        if args.wait:
            created = [client.get(row["uuid"]) for row in created]
        print_json({"batch": batch, "objects": created})
    elif not args.wait:
        for row in created:
            print(row["uuid"])
    return 1 if failed else 0


def _wait(client: FaafoClient, batch: str, total: int, quiet: bool) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=quiet, transient=False) as progress:
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
    if not args.json:
        log.info("listing all fractals")
    rows = list(client.iter_all(status=args.status))
    from faafo.client.output import console, list_table, print_json

    if args.json:
        print_json(rows)
    else:
        console().print(list_table(rows))
    return 0


def _check_uuid(text: str) -> str:
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        raise UsageError(f"{text!r} is not a valid UUID") from None


def cmd_show(client: FaafoClient, args: argparse.Namespace) -> int:
    row = client.get(_check_uuid(args.uuid))
    from faafo.client.output import console, print_json, show_table

    if args.json:
        print_json(row)
    else:
        console().print(show_table(row))
    return 0


def cmd_get(client: FaafoClient, args: argparse.Namespace) -> int:
    uuid = _check_uuid(args.uuid)
    row = client.get(uuid)
    if row["status"] != "done":
        detail = f": {row['error']}" if row.get("error") else ""
        raise ClientError(f"fractal {uuid} is {row['status']}{detail}; no image to get")
    path = args.output or Path(f"{uuid}.png")
    try:
        size = client.download(uuid, path, row.get("checksum"))
    except OSError as error:
        raise ClientError(f"cannot write {path}: {error.strerror or error}") from None
    if args.json:
        from faafo.client.output import print_json

        print_json({"uuid": uuid, "path": str(path), "size": size, "checksum": row["checksum"]})
    else:
        print(f"wrote {path} ({size} bytes, checksum verified)")
    return 0


def cmd_delete(client: FaafoClient, args: argparse.Namespace) -> int:
    uuid = _check_uuid(args.uuid)
    client.delete(uuid)
    if args.json:
        from faafo.client.output import print_json

        print_json({"uuid": uuid, "deleted": True})
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


def endpoint_of(args: argparse.Namespace) -> str:
    return (
        getattr(args, "endpoint_url", None)
        or os.environ.get("FAAFO_ENDPOINT_URL")
        or DEFAULT_ENDPOINT
    )


def main(argv: list[str] | None = None) -> int:
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
