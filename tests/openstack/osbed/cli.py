"""``python tests/openstack/bed.py up [--without octavia]|down|status``.

Octavia is optional: ``--without octavia`` (or ``FAAFO_OPENSTACK_OCTAVIA=0``)
brings up a cloud with no ``load-balancer`` service; a running bed of the other
kind is replaced. ``up`` with neither reuses whatever bed is running.
"""

from __future__ import annotations

import argparse
import sys

from .control import down, status
from .errors import BedError, Unavailable
from .lifecycle import ensure_up


def _say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bed.py", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--without", action="append", choices=("octavia",), default=[],
                        help="up: leave this optional service out")
    parser.add_argument("--with", dest="with_", action="append", choices=("octavia",),
                        default=[], help="up: insist on this optional service")
    args = parser.parse_args(argv)
    octavia = False if "octavia" in args.without else True if "octavia" in args.with_ else None
    try:
        if args.command == "up":
            bed, started = ensure_up(say=_say, octavia=octavia)
            if not started:
                _say(f"the bed is already up; reusing it (clouds.yaml: {bed.clouds_yaml})")
            return 0
        if args.command == "down":
            down(say=_say)
            return 0
        return status(say=_say)
    except Unavailable as error:
        print(error.describe(), file=sys.stderr)
        return 2
    except BedError as error:
        print(error.describe(), file=sys.stderr)
        return 1
