"""Where the test bed keeps things.

Nothing goes into the git clone: the services' virtualenv is keyed by a hash of
what goes into it, so a fresh clone (CI) reuses the one already built on this
machine while a new machine builds its own; a running bed's state (configs,
logs, pid files, image files) sits in one directory, by default beside it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

#: This folder (``tests/openstack``) in whatever clone the code runs from.
HERE = Path(__file__).resolve().parent.parent
REQUIREMENTS = HERE / "requirements.txt"
ML2_PACKAGE = HERE / "ml2"
TEMPLATES = HERE / "templates"
STACKS = HERE / "stacks"

#: Bumped when the way the venv is built changes, so old venvs are not reused.
VENV_LAYOUT = "1"


def cache_root() -> Path:
    """``$FAAFO_OPENSTACK_CACHE``, else ``$XDG_CACHE_HOME/faafo-openstack``, else
    ``~/.cache/faafo-openstack``."""
    explicit = os.environ.get("FAAFO_OPENSTACK_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "faafo-openstack"


def venv_key() -> str:
    """A hash of everything that ends up in the venv: the pinned requirements,
    the ML2 driver's sources and the interpreter's version."""
    digest = hashlib.sha256()
    digest.update(f"layout={VENV_LAYOUT};python={sys.version_info[:2]}".encode())
    digest.update(REQUIREMENTS.read_bytes())
    for path in sorted(ML2_PACKAGE.rglob("*")):
        skipped = "__pycache__" in path.parts or path.name.endswith(".egg-info")
        if path.is_file() and not skipped:
            digest.update(str(path.relative_to(ML2_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Layout:
    """Every path of one bed, computed at run time."""

    venv: Path
    state: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def venv_etc(self) -> Path:
        """Where the services' wheels put their shipped paste and policy files."""
        return self.venv / "etc"

    @property
    def etc(self) -> Path:
        return self.state / "etc"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def run(self) -> Path:
        return self.state / "run"

    @property
    def data(self) -> Path:
        return self.state / "data"

    @property
    def state_file(self) -> Path:
        return self.state / "state.json"

    @property
    def clouds_yaml(self) -> Path:
        return self.state / "clouds.yaml"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pid_file(self, service: str) -> Path:
        return self.run / f"{service}.pid"


def default_state() -> Path:
    return cache_root() / "state"


def layout() -> Layout:
    """The layout for this checkout; ``FAAFO_OPENSTACK_STATE`` moves the state."""
    root = cache_root()
    state = os.environ.get("FAAFO_OPENSTACK_STATE")
    return Layout(
        venv=root / f"venv-{venv_key()}",
        state=Path(state).expanduser() if state else default_state(),
    )
