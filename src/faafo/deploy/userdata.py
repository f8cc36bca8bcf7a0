"""Cloud-init user data: deploy/install.sh itself, plus the flags of one server's role.

The brief is "the same script, not a copy": deploy/install.sh (linked into the
package, copied into its wheel) is read every time user data is made and
embedded whole, so a fix to install.sh reaches the next deployment with no step
between.
URLs and tokens go into a root-only environment file rather than the command
line, which keeps them out of ``ps`` on the guest (install.sh reads them from
``FAAFO_*`` variables).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from faafo.deploy.errors import DeployError

GUEST_SCRIPT = "/usr/local/sbin/faafo-install"
GUEST_ENV = "/etc/faafo/deploy.env"


def install_script_path() -> Path:
    """Where install.sh is: the copy installed with faafo.

    ``faafo/deploy/assets`` links to the repository's ``deploy/`` in a checkout
    and holds copies in an installed wheel, so ``pip install faafo`` can deploy
    with the very script (and Heat templates) of its own version.
    """
    packaged = Path(__file__).parent / "assets" / "install.sh"
    if packaged.is_file():
        return packaged
    raise DeployError("install.sh is missing from this faafo installation: reinstall faafo")


def install_script() -> str:
    """The text of install.sh, read now."""
    return install_script_path().read_text()


@dataclass(frozen=True)
class Role:
    """One server's install.sh invocation: flags on the command line, secrets in env."""

    install: tuple[str, ...]
    roles: tuple[str, ...]
    env: dict[str, str]
    backends: str = ""

    def argv(self) -> list[str]:
        """install.sh's arguments (no secrets: those travel in the environment file)."""
        args = [GUEST_SCRIPT]
        for component in self.install:
            args += ["-i", component]
        for role in self.roles:
            args += ["-r", role]
        if self.backends:
            args += ["-b", self.backends]
        return args


def _env_file(env: dict[str, str]) -> str:
    """A shell-sourceable file; values are URL-safe by construction, but quote anyway."""
    lines = []
    for key, value in sorted(env.items()):
        if "'" in value:
            raise ValueError(f"{key}: a quote in a value")
        lines.append(f"{key}='{value}'")
    return "\n".join(lines) + "\n"


def render(role: Role, script: str | None = None, extra_commands: list[str] | None = None) -> str:
    """A ``#cloud-config`` document (JSON is YAML) installing ``role`` with install.sh.

    ``extra_commands`` run after the role is up (the Heat templates' signal).
    """
    text = install_script() if script is None else script
    run = "set -a; . {env}; set +a; exec {cmd}".format(env=GUEST_ENV, cmd=" ".join(role.argv()))
    doc = {
        "write_files": [
            {
                "path": GUEST_SCRIPT,
                "permissions": "0755",
                "encoding": "b64",
                "content": base64.b64encode(text.encode()).decode(),
            },
            {"path": GUEST_ENV, "permissions": "0600", "content": _env_file(role.env)},
        ],
        "runcmd": [["sh", "-c", run], *(["sh", "-c", c] for c in extra_commands or [])],
    }
    return "#cloud-config\n" + json.dumps(doc, indent=1) + "\n"
