#!/usr/bin/env python3
"""Bring faafo's OpenStack test bed up, report on it, or tear it down:

    python tests/openstack/bed.py up|down|status

Standard library only: run it with any Python 3.10+ (as root, on a machine
with MariaDB and RabbitMQ). See README.md in this folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from osbed.cli import main

if __name__ == "__main__":
    sys.exit(main())
