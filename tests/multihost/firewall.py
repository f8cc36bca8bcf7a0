"""The shipped firewall (deploy/firewall/ROLE.rules) applied inside each host's namespace.

The harness does not keep rules of its own: it loads the very files a real
deployment applies (``install.sh -f ROLE`` renders the same text, a test in
test_deploy_files.py checks it), with the ``${...}`` placeholders filled in
with this test range's addresses. A group is an address block (API hosts in
one /28, workers in another), so a worker added later is admitted with no rule
change, as a new member of an OpenStack security group is. Everything else
inbound is dropped, silently, as a security group does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from multihost.network import Host

FIREWALL = Path(__file__).resolve().parents[2] / "deploy" / "firewall"
ROLES = ("services", "api", "loadbalancer", "worker")
_PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")


def rules(role: str, values: Mapping[str, str]) -> str:
    """The role's shipped ``iptables-restore`` table with every placeholder filled in."""
    template = (FIREWALL / f"{role}.rules").read_text()

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"deploy/firewall/{role}.rules needs {name}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def restore(host: Host, table: str, program: str = "iptables-restore") -> None:
    done = host.popen([program], stdin=-1, stdout=-1, stderr=-1)
    _, error = done.communicate(table, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{program} on {host.name}: {error}")


def apply(host: Host, role: str, values: Mapping[str, str]) -> None:
    restore(host, rules(role, values))
