"""``python tests/openstack/bed.py up|down|status``."""

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
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            bed, started = ensure_up(say=_say)
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
