"""The local record of a deployment: its parameters and its generated secrets.

Secrets are made once per deployment and reused by every later ``up`` (so a
re-run does not change passwords under running servers); they live only in this
file (mode 0600) and in the servers' user data, never in output or logs.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    """``$FAAFO_DEPLOY_STATE`` or ``$XDG_STATE_HOME/faafo/deploy`` (~/.local/state)."""
    explicit = os.environ.get("FAAFO_DEPLOY_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "faafo" / "deploy"


def _secret() -> str:
    """URL-safe, as install.sh requires of passwords inside URLs."""
    return secrets.token_urlsafe(24)


@dataclass
class Secrets:
    """Per-deployment passwords and API tokens."""

    broker_password: str = field(default_factory=_secret)
    database_password: str = field(default_factory=_secret)
    client_token: str = field(default_factory=_secret)
    worker_token: str = field(default_factory=_secret)

    def __repr__(self) -> str:  # never show them, even in a traceback
        return "Secrets(<hidden>)"


@dataclass
class State:
    """What ``up`` chose, so that ``status``, ``down`` and scaling need no flags."""

    name: str
    cloud: str | None = None
    topology: str = "aio"
    apis: int = 2
    workers: int = 1
    image: str = "Ubuntu QCOW2"
    flavor: str = "m1.small"
    network: str = "private"
    external_network: str | None = None
    key_file: str | None = None
    pip_source: str = "faafo"
    heat: bool = False
    #: ``--lb``: auto (Octavia when the cloud has it), octavia or haproxy.
    lb: str = "auto"
    secrets: Secrets = field(default_factory=Secrets)

    @property
    def path(self) -> Path:
        """The file of this deployment."""
        return path_for(self.name, self.cloud)

    def save(self) -> None:
        """Write atomically with mode 0600 (created so, never widened)."""
        target = self.path
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(self), out, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)

    def remove(self) -> None:
        """Forget the deployment (after ``down``)."""
        self.path.unlink(missing_ok=True)


def path_for(name: str, cloud: str | None) -> Path:
    """One file per cloud and name, so the same prefix on two clouds does not clash."""
    return state_dir() / f"{cloud or 'default'}--{name}.json"


def load(name: str, cloud: str | None) -> State | None:
    """The saved state, or None when this deployment was never brought up from here."""
    p = path_for(name, cloud)
    if not p.exists():
        return None
    data: dict[str, Any] = json.loads(p.read_text())
    data["secrets"] = Secrets(**data.get("secrets", {}))
    return State(**data)
