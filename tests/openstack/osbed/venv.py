"""The services' own virtualenv, built once per requirements hash.

OpenStack's services pin libraries the app must not see (SQLAlchemy, eventlet,
oslo.*), so they live in a venv of their own outside the clone. A venv is not
relocatable, hence it is built in place and only marked complete at the end: a
half-built one (interrupted install) is thrown away and built again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .errors import BedError
from .locking import file_lock
from .paths import ML2_PACKAGE, REQUIREMENTS, Layout

COMPLETE_MARKER = ".osbed-complete"


def is_built(layout: Layout) -> bool:
    return (layout.venv / COMPLETE_MARKER).exists()


def ensure_venv(layout: Layout, say=print) -> bool:
    """Build the venv unless a complete one exists; returns True if it built one."""
    layout.venv.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(layout.venv.with_name(layout.venv.name + ".lock")):
        if is_built(layout):
            return False
        _build(layout, say)
    _prune(layout, say)
    return True


def _prune(layout: Layout, say) -> None:
    """Remove venvs of older pins (about 650 MB each). A bed that is still
    running from one keeps it: its state file names the venv it runs from."""
    in_use = {str(layout.venv)}
    with contextlib.suppress(OSError, ValueError):
        in_use.add(json.loads(layout.state_file.read_text()).get("venv", ""))
    for old in layout.venv.parent.glob("venv-*"):
        if not old.is_dir() or str(old) in in_use:
            continue
        lock = old.with_name(old.name + ".lock")
        with open(lock, "a") as handle:
            try:  # another checkout may be building it right now
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            say(f"removing the outdated virtualenv {old}")
            shutil.rmtree(old, ignore_errors=True)
            old.with_name(old.name + ".build.log").unlink(missing_ok=True)
        lock.unlink(missing_ok=True)


def _build(layout: Layout, say) -> None:
    if layout.venv.exists():
        shutil.rmtree(layout.venv)
    log = layout.venv.with_name(layout.venv.name + ".build.log")
    started = time.monotonic()
    say(f"building the services' virtualenv in {layout.venv} (log: {log})")
    steps: list[list[str]] = [
        [sys.executable, "-m", "venv", str(layout.venv)],
        [str(layout.python), "-m", "pip", "install", "--upgrade", "pip"],
        [str(layout.python), "-m", "pip", "install", "-r", str(REQUIREMENTS)],
        # setuptools is pinned in the requirements, so no isolated build env
        # (which would fetch another setuptools) is needed for our driver.
        [str(layout.python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         str(ML2_PACKAGE)],
    ]
    with open(log, "w") as out:
        for argv in steps:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                    env=_pip_env(), check=False)
            if result.returncode != 0:
                raise BedError("virtualenv", f"`{' '.join(argv[-3:])}` failed "
                               f"(exit {result.returncode})", log)
    _clean_build_leftovers()
    (layout.venv / COMPLETE_MARKER).write_text(f"{time.time()}\n")
    # Flush the ~650 MB just written now: left to writeback, it stalls every
    # fsync of MariaDB's schema migrations that follow (seen: keystone's
    # setup took 115 s instead of 20).
    os.sync()
    say(f"virtualenv built in {time.monotonic() - started:.0f} s")


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_REQUIRE", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _clean_build_leftovers() -> None:
    """A local (non-editable) build of the driver leaves ``build/`` and
    ``*.egg-info`` beside its sources, inside the clone: remove them."""
    for leftover in (ML2_PACKAGE / "build", *ML2_PACKAGE.glob("*.egg-info")):
        if isinstance(leftover, Path) and leftover.exists():
            shutil.rmtree(leftover, ignore_errors=True)
