"""The scaled topology's load balancer as an Octavia one, when the cloud has Octavia.

Issue 8 asks for "an Octavia load balancer when the cloud has one, else an
HAProxy server of our own". This module is the Octavia half: a load balancer
``PREFIX-lb`` with its VIP on the private network's subnet, an HTTP listener on
80, a ROUND_ROBIN pool, an HTTP health monitor (GET /readyz expecting 200) and
one member per API server; converge.py puts a floating IP on the VIP port. Every
object carries the deployment's marker (description and tag), so ``down``
removes exactly what ``up`` made, and ``up`` creates only what is missing.

Octavia refuses any change while the load balancer is ``PENDING_*``, so every
step waits for ``ACTIVE`` before the next.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faafo.deploy.errors import DeployError
from faafo.deploy.topology import HTTP
from openstack import exceptions as sdk_exc

SERVICE = "load-balancer"
CHOICES = ("auto", "octavia", "haproxy")
#: The health monitor: what HAProxy's ``option httpchk GET /readyz`` does.
HEALTH_MONITOR: dict[str, Any] = {
    "type": "HTTP",
    "http_method": "GET",
    "url_path": "/readyz",
    "expected_codes": "200",
    "delay": 5,
    "timeout": 3,
    "max_retries": 3,
}


def available(conn: Any) -> bool:
    """Whether the cloud's catalog has Octavia (a ``load-balancer`` service)."""
    return bool(conn.has_service(SERVICE))


def resolve(conn: Any, choice: str) -> str:
    """``octavia`` or ``haproxy`` for the ``--lb`` choice on this cloud.

    ``auto`` takes Octavia when the catalog has a ``load-balancer`` service;
    asking for Octavia on a cloud without one is a user error, not a fallback.
    """
    if choice not in CHOICES:
        raise DeployError(f"--lb must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "haproxy":
        return "haproxy"
    has_octavia = available(conn)
    if choice == "octavia" and not has_octavia:
        raise DeployError(
            "--lb octavia: this cloud has no load-balancer service (Octavia); use --lb haproxy"
        )
    return "octavia" if has_octavia else "haproxy"


@dataclass(frozen=True)
class Summary:
    """What ``status`` shows of the load balancer."""

    name: str
    vip: str
    floating_ip: str | None
    provisioning: str
    operating: str


class Balancer:
    """The Octavia load balancer of deployment ``name``."""

    def __init__(
        self,
        conn: Any,
        name: str,
        marker: str,
        created: list[str],
        deleted: list[str],
        say: Callable[[str], None],
        wait: float = 600.0,
    ) -> None:
        self.conn = conn
        self.lbs = conn.load_balancer
        self.full = f"{name}-lb"
        self.prefix = name
        self.marker = marker
        self.created = created
        self.deleted = deleted
        self.say = say
        self.wait = wait

    # ------------------------------------------------------------ lookups

    def _ours(self, item: Any) -> bool:
        return (item.description or "") == self.marker or self.marker in (item.tags or [])

    def find(self) -> Any | None:
        """Our load balancer (by name and marker), or None."""
        for lb in self.lbs.load_balancers(name=self.full):
            if self._ours(lb):
                return lb
        return None

    def _mark(self) -> dict[str, Any]:
        return {"description": self.marker, "tags": [self.marker]}

    # ------------------------------------------------------------ waiting

    def _settle(self, lb_id: str) -> Any:
        """The load balancer once no change is pending; ERROR is the user's to hear."""
        deadline = time.monotonic() + self.wait
        while True:
            lb = self.lbs.get_load_balancer(lb_id)
            status = lb.provisioning_status
            if status == "ACTIVE":
                return lb
            if status == "ERROR":
                raise DeployError(
                    f"load balancer {self.full} went to ERROR: run up again to replace it"
                )
            if time.monotonic() > deadline:
                raise DeployError(f"timed out waiting for load balancer {self.full} ({status})")
            time.sleep(1)

    def _gone(self, lb_id: str) -> None:
        deadline = time.monotonic() + self.wait
        while True:
            try:
                self.lbs.get_load_balancer(lb_id)
            except sdk_exc.NotFoundException:
                return
            if time.monotonic() > deadline:
                raise DeployError(f"timed out waiting for load balancer {self.full} to go")
            time.sleep(1)

    # ------------------------------------------------------------ converge

    def converge(self, network: Any, members: dict[str, str]) -> Any:
        """Create what is missing and make the members ``members`` (short name ->
        address); returns the ACTIVE load balancer (every change above waited
        for ACTIVE again). Its floating IP is the caller's (converge.py)."""
        lb = self.find()
        if lb is not None and lb.provisioning_status == "ERROR":
            self.say(f"{self.full} is in ERROR: replacing it")
            self.remove()
            lb = None
        if lb is None:
            self.say(f"creating load balancer {self.full}")
            lb = self.lbs.create_load_balancer(
                name=self.full, vip_subnet_id=self._subnet(network), **self._mark()
            )
            self.created.append(f"load balancer {self.full}")
        lb = self._settle(lb.id)
        listener = self._listener(lb)
        pool = self._pool(lb, listener)
        self._health_monitor(lb, pool)
        self._members(lb, pool, members)
        return lb

    def _subnet(self, network: Any) -> str:
        """The private network's (first IPv4) subnet: where the VIP lives."""
        for subnet_id in network.subnet_ids or []:
            if self.conn.network.get_subnet(subnet_id).ip_version == 4:
                return str(subnet_id)
        raise DeployError(f"network {network.name!r} has no IPv4 subnet for the load balancer")

    def _listener(self, lb: Any) -> Any:
        name = f"{self.full}-http"
        for ref in lb.listeners or []:
            listener = self.lbs.get_listener(ref["id"])
            if listener.name == name:
                return listener
        self.say(f"creating listener {name} (HTTP {HTTP})")
        listener = self.lbs.create_listener(
            name=name,
            protocol="HTTP",
            protocol_port=HTTP,
            load_balancer_id=lb.id,
            **self._mark(),
        )
        self.created.append(f"listener {name}")
        self._settle(lb.id)
        return listener

    def _pool(self, lb: Any, listener: Any) -> Any:
        name = f"{self.full}-pool"
        for ref in lb.pools or []:
            pool = self.lbs.get_pool(ref["id"])
            if pool.name == name:
                return pool
        self.say(f"creating pool {name} (ROUND_ROBIN)")
        pool = self.lbs.create_pool(
            name=name,
            protocol="HTTP",
            lb_algorithm="ROUND_ROBIN",
            listener_id=listener.id,
            **self._mark(),
        )
        self.created.append(f"pool {name}")
        self._settle(lb.id)
        return pool

    def _health_monitor(self, lb: Any, pool: Any) -> None:
        # ``pool`` is fresh: just fetched by _pool, or just created (no monitor yet).
        if pool.health_monitor_id:
            return
        name = f"{self.full}-readyz"
        self.say(f"creating health monitor {name} (GET /readyz)")
        self.lbs.create_health_monitor(
            name=name, pool_id=pool.id, tags=[self.marker], **HEALTH_MONITOR
        )
        self.created.append(f"health monitor {name}")
        self._settle(lb.id)

    def _members(self, lb: Any, pool: Any, members: dict[str, str]) -> None:
        want = {f"{self.prefix}-{short}": address for short, address in members.items()}
        have = {m.name: m for m in self.lbs.members(pool.id)}
        for name, member in sorted(have.items()):
            if want.get(name) != member.address or member.protocol_port != HTTP:
                self.say(f"removing member {name}")
                self.lbs.delete_member(member, pool.id)
                self.deleted.append(f"member {name}")
                self._settle(lb.id)
                del have[name]
        for name, address in sorted(want.items()):
            if name not in have:
                self.say(f"adding member {name} ({address}:{HTTP})")
                self.lbs.create_member(
                    pool.id, name=name, address=address, protocol_port=HTTP, tags=[self.marker]
                )
                self.created.append(f"member {name}")
                self._settle(lb.id)

    # ------------------------------------------------------------ down, status

    def remove(self) -> bool:
        """Delete our load balancer (and everything in it) and its floating IP."""
        lb = self.find()
        if lb is None:
            return False
        for fip in self.conn.network.ips(port_id=lb.vip_port_id):
            if (fip.description or "") == self.marker:
                self.conn.network.delete_ip(fip)
                self.deleted.append(f"floating IP {fip.floating_ip_address}")
        if lb.provisioning_status.startswith("PENDING_"):
            # ERROR or stuck: a cascade delete is still what we want.
            with contextlib.suppress(DeployError):
                lb = self._settle(lb.id)
        self.say(f"deleting load balancer {self.full}")
        self.lbs.delete_load_balancer(lb.id, cascade=True)
        self._gone(lb.id)
        self.deleted.append(f"load balancer {self.full}")
        return True

    def summary(self) -> Summary | None:
        """Name, VIP, floating IP and statuses, or None when there is none."""
        lb = self.find()
        if lb is None:
            return None
        fip = next(iter(self.conn.network.ips(port_id=lb.vip_port_id)), None)
        return Summary(
            name=lb.name,
            vip=lb.vip_address or "",
            floating_ip=fip.floating_ip_address if fip is not None else None,
            provisioning=lb.provisioning_status,
            operating=lb.operating_status,
        )
