"""The seed's security groups as iptables rules inside each host's namespace.

OpenStack security groups admit traffic by the group of its source; here a
group is an address block (API hosts in one /28, workers in another), so a
worker added later is admitted to the queue with no rule change, exactly as a
new member of a security group is. Everything else inbound is dropped, as a
security group does (silently, no reset).
"""

from __future__ import annotations

from dataclasses import dataclass

from multihost.network import Host

ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Allow:
    port: int
    source: str = ANYWHERE


def rules(allowed: list[Allow]) -> str:
    """An ``iptables-restore`` table: default drop, replies and loopback allowed."""
    lines = [
        "*filter",
        ":INPUT DROP [0:0]",
        ":FORWARD DROP [0:0]",
        ":OUTPUT ACCEPT [0:0]",
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A INPUT -p icmp -j ACCEPT",
    ]
    lines += [f"-A INPUT -p tcp -s {a.source} --dport {a.port} -j ACCEPT" for a in allowed]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def apply(host: Host, allowed: list[Allow]) -> None:
    done = host.popen(["iptables-restore"], stdin=-1, stdout=-1, stderr=-1)
    _, error = done.communicate(rules(allowed), timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"iptables-restore on {host.name}: {error}")
