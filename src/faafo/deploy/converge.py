"""Make the cloud match a plan, found by names and a description marker.

Every resource is named ``PREFIX-short`` and neutron resources carry the
description ``faafo-deploy:PREFIX``, servers the metadata ``faafo_deploy``,
the Octavia load balancer (octavia.py) the marker as description and tag;
``up`` creates only what is missing, removes surplus workers, and so finishes
an interrupted run; ``down`` deletes only what carries the marker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faafo.deploy import octavia
from faafo.deploy.errors import DeployError
from faafo.deploy.roles import roles
from faafo.deploy.state import State
from faafo.deploy.topology import Plan, Rule, plan
from faafo.deploy.userdata import render
from openstack import exceptions as sdk_exc

META = "faafo_deploy"
Progress = Callable[[str], None]


def marker(name: str) -> str:
    """The description every neutron resource of deployment ``name`` carries."""
    return f"faafo-deploy:{name}"


@dataclass
class Created:
    """What one ``up`` added or removed, so that tests and the CLI can say it."""

    created: list[str]
    deleted: list[str]


def _quota(error: Exception) -> DeployError | None:
    """A quota refusal (nova 403, neutron 409) as a user error, else None."""
    text = str(error)
    if "quota" in text.lower():
        return DeployError(f"quota exceeded: {text.strip().splitlines()[0][:300]}")
    return None


class Deployment:
    """One named deployment on one cloud connection."""

    def __init__(self, conn: Any, state: State, progress: Progress | None = None) -> None:
        self.conn = conn
        self.state = state
        self.name = state.name
        self.say: Progress = progress or (lambda _msg: None)
        self.changes = Created([], [])

    # ------------------------------------------------------------ lookups

    def ours(self, resource: Any) -> bool:
        """Whether a neutron resource was made by this deployment."""
        return (resource.description or "") == marker(self.name)

    def servers(self) -> list[Any]:
        """This deployment's servers (by metadata, not only by name)."""
        found = self.conn.compute.servers(details=True, name=f"^{self.name}-")
        return [s for s in found if (s.metadata or {}).get(META) == self.name]

    def groups(self) -> list[Any]:
        return [g for g in self.conn.network.security_groups() if self.ours(g)]

    def ports(self) -> list[Any]:
        return [p for p in self.conn.network.ports() if self.ours(p)]

    def floating_ips(self) -> list[Any]:
        return [f for f in self.conn.network.ips() if self.ours(f)]

    def lb_kind(self) -> str:
        """``octavia`` or ``haproxy``: the state's ``--lb`` choice resolved on this cloud."""
        return octavia.resolve(self.conn, self.state.lb)

    def balancer(self, wait: float = 600.0) -> octavia.Balancer:
        """The deployment's Octavia load balancer (whether or not it exists yet)."""
        return octavia.Balancer(
            self.conn,
            self.name,
            marker(self.name),
            self.changes.created,
            self.changes.deleted,
            self.say,
            wait,
        )

    # ------------------------------------------------------------ checks

    def preflight(self) -> dict[str, Any]:
        """Resolve image, flavor, networks and key before creating anything."""
        st, c = self.state, self.conn
        image = c.image.find_image(st.image)
        if image is None:
            raise DeployError(f"image {st.image!r} not found (--image)")
        flavor = c.compute.find_flavor(st.flavor)
        if flavor is None:
            raise DeployError(f"flavor {st.flavor!r} not found (--flavor)")
        network = c.network.find_network(st.network)
        if network is None:
            raise DeployError(f"network {st.network!r} not found (--network)")
        if st.external_network:
            external = c.network.find_network(st.external_network)
            if external is None:
                raise DeployError(f"external network {st.external_network!r} not found")
        else:
            external = next(iter(c.network.networks(is_router_external=True)), None)
            if external is None:
                raise DeployError("no external network for floating IPs (--external-network)")
        key = None
        if st.key_file:
            path = Path(st.key_file).expanduser()
            if not path.is_file():
                raise DeployError(f"key file {st.key_file} not found (--key-file)")
            key = path.read_text().strip()
        return {
            "image": image,
            "flavor": flavor,
            "network": network,
            "external": external,
            "key": key,
        }

    # ------------------------------------------------------------ converge

    def up(self, wait: float = 600.0) -> Created:
        """Create what is missing, delete surplus workers, wait for ACTIVE."""
        try:
            return self._up(wait)
        except sdk_exc.HttpException as error:
            raise (_quota(error) or error) from error

    def _up(self, wait: float) -> Created:
        found = self.preflight()
        kind = self.lb_kind() if self.state.topology == "scaled" else "haproxy"
        p = plan(self.state.topology, self.state.apis, self.state.workers, lb=kind)
        key_name = self.keypair(found["key"])
        group_ids = self._groups(p)
        wanted = {s.name for s in p.servers}
        self._remove_surplus(wanted)
        self._remove_stale_groups(p)
        ports = {
            s.name: self._port(s.name, found["network"], group_ids[s.group]) for s in p.servers
        }
        addresses = {n: port.fixed_ips[0]["ip_address"] for n, port in ports.items()}
        vip = None
        if kind == "octavia":
            # Before the servers: the workers' user data names the VIP.
            apis = {s.name: addresses[s.name] for s in p.servers if s.kind == "api"}
            balancer = self.balancer(wait)
            lb = balancer.converge(found["network"], apis)
            self._floating_ip(lb.vip_port_id, balancer.full, found["external"])
            vip = lb.vip_address
        elif self.state.topology == "scaled" and octavia.available(self.conn):
            self.balancer(wait).remove()  # --lb haproxy after an Octavia one
        user_data = roles(p, addresses, self.state, lb_address=vip)
        existing = {s.name: s for s in self.servers()}
        building = []
        for server in p.servers:
            full = f"{self.name}-{server.name}"
            have = existing.get(full)
            if have is not None and have.status == "ERROR":
                self.say(f"{full} is in ERROR: replacing it")
                self.conn.compute.delete_server(have)
                self.conn.compute.wait_for_delete(have, wait=wait, interval=1)
                have = None
            if have is None:
                self.say(f"creating server {full}")
                have = self.conn.compute.create_server(
                    name=full,
                    image_id=found["image"].id,
                    flavor_id=found["flavor"].id,
                    networks=[{"port": ports[server.name].id}],
                    key_name=key_name,
                    user_data=_b64(render(user_data[server.name])),
                    metadata={META: self.name, "faafo_role": server.label},
                )
                self.changes.created.append(f"server {full}")
            building.append(have)
        for server in building:
            if server.status != "ACTIVE":
                self.say(f"waiting for {server.name}")
                self.conn.compute.wait_for_server(server, status="ACTIVE", wait=wait, interval=1)
        for server in p.servers:
            if server.public:
                port = ports[server.name]
                self._floating_ip(port.id, port.name, found["external"])
        return self.changes

    def keypair(self, public_key: str | None) -> str | None:
        if public_key is None:
            return None
        name = f"{self.name}-key"
        if self.conn.compute.find_keypair(name) is None:
            self.say(f"importing key pair {name}")
            self.conn.compute.create_keypair(name=name, public_key=public_key)
            self.changes.created.append(f"keypair {name}")
        return name

    def _groups(self, p: Plan) -> dict[str, str]:
        """Security groups first (all of them), then their rules, which refer to each other."""
        have = {g.name: g for g in self.groups()}
        ids: dict[str, str] = {}
        for group in p.groups:
            full = f"{self.name}-{group.name}"
            if full not in have:
                self.say(f"creating security group {full}")
                have[full] = self.conn.network.create_security_group(
                    name=full, description=marker(self.name)
                )
                self.changes.created.append(f"security group {full}")
            ids[group.name] = have[full].id
        for group in p.groups:
            self._rules(ids[group.name], group.rules, ids)
        return ids

    def _rules(self, group_id: str, rules: tuple[Rule, ...], ids: dict[str, str]) -> None:
        want = {
            (
                "tcp",
                r.port,
                ids[r.remote_group] if r.remote_group else None,
                None if r.remote_group else "0.0.0.0/0",
            )
            for r in rules
        }
        current = {}
        for rule in self.conn.network.security_group_rules(security_group_id=group_id):
            if rule.direction != "ingress":
                continue
            key = (rule.protocol, rule.port_range_min, rule.remote_group_id, rule.remote_ip_prefix)
            current[key] = rule
        for key, rule in current.items():
            if key not in want:
                self.conn.network.delete_security_group_rule(rule)
                self.changes.deleted.append(f"rule {key}")
        for proto, port, group, prefix in sorted(want - current.keys(), key=str):
            self.conn.network.create_security_group_rule(
                security_group_id=group_id,
                direction="ingress",
                ethertype="IPv4",
                protocol=proto,
                port_range_min=port,
                port_range_max=port,
                remote_group_id=group,
                remote_ip_prefix=prefix,
            )
            self.changes.created.append(f"rule tcp/{port}")

    def _port(self, short: str, network: Any, group_id: str) -> Any:
        full = f"{self.name}-{short}"
        for port in self.conn.network.ports(name=full, network_id=network.id):
            if self.ours(port):
                return port
        self.changes.created.append(f"port {full}")
        return self.conn.network.create_port(
            name=full,
            network_id=network.id,
            security_groups=[group_id],
            description=marker(self.name),
        )

    def _floating_ip(self, port_id: str, label: str, external: Any) -> Any:
        """The floating IP on port ``port_id`` (a server's, or the Octavia VIP's),
        made with our marker when missing; ``label`` names the port's owner."""
        for fip in self.conn.network.ips(port_id=port_id):
            return fip
        self.say(f"floating IP for {label}")
        fip = self.conn.network.create_ip(
            floating_network_id=external.id, port_id=port_id, description=marker(self.name)
        )
        self.changes.created.append(f"floating IP {fip.floating_ip_address}")
        return fip

    def _remove_stale_groups(self, p: Plan) -> None:
        """Our groups the plan no longer has (``lb`` once Octavia balances),
        after their servers are gone."""
        names = {f"{self.name}-{g.name}" for g in p.groups}
        for group in self.groups():
            if group.name not in names:
                self.say(f"deleting security group {group.name}")
                self.conn.network.delete_security_group(group)
                self.changes.deleted.append(f"security group {group.name}")

    def _remove_surplus(self, wanted: set[str]) -> None:
        """Servers (and their ports, IPs) of ours that the plan no longer has: extra workers."""
        doomed = [s for s in self.servers() if s.name[len(self.name) + 1 :] not in wanted]
        for server in doomed:
            self.say(f"deleting surplus server {server.name}")
            self.conn.compute.delete_server(server)
        for server in doomed:
            self.conn.compute.wait_for_delete(server, wait=300, interval=1)
            self.changes.deleted.append(f"server {server.name}")
        names = {f"{self.name}-{w}" for w in wanted}
        for port in self.ports():
            if port.name not in names:
                for fip in self.conn.network.ips(port_id=port.id):
                    self.conn.network.delete_ip(fip)
                self.conn.network.delete_port(port)
                self.changes.deleted.append(f"port {port.name}")

    # ------------------------------------------------------------ down

    def down(self, wait: float = 300.0) -> Created:
        """Delete everything with our marker, in dependency order."""
        if octavia.available(self.conn):
            self.balancer(wait).remove()
        servers = self.servers()
        for server in servers:
            self.say(f"deleting server {server.name}")
            self.conn.compute.delete_server(server)
        for server in servers:
            self.conn.compute.wait_for_delete(server, wait=wait, interval=1)
            self.changes.deleted.append(f"server {server.name}")
        for fip in self.floating_ips():
            self.conn.network.delete_ip(fip)
            self.changes.deleted.append(f"floating IP {fip.floating_ip_address}")
        for port in self.ports():
            self.conn.network.delete_port(port)
            self.changes.deleted.append(f"port {port.name}")
        groups = self.groups()
        for group in groups:  # rules naming other groups go first, or neutron refuses
            for rule in self.conn.network.security_group_rules(security_group_id=group.id):
                if rule.remote_group_id:
                    self.conn.network.delete_security_group_rule(rule)
        for group in groups:
            self.say(f"deleting security group {group.name}")
            self.conn.network.delete_security_group(group)
            self.changes.deleted.append(f"security group {group.name}")
        key = self.conn.compute.find_keypair(f"{self.name}-key")
        if key is not None:
            self.conn.compute.delete_keypair(key)
            self.changes.deleted.append(f"keypair {key.name}")
        return self.changes

    # ------------------------------------------------------------ status

    def status(self) -> tuple[list[dict[str, str]], str | None]:
        """Rows (server, roles, addresses, state) and the app URL; an Octavia
        load balancer is a row too, and the URL is then its floating IP's."""
        fips = {f.port_id: f.floating_ip_address for f in self.floating_ips()}
        ports = {p.device_id: p for p in self.ports()}
        rows, url = [], None
        for server in sorted(self.servers(), key=lambda s: s.name):
            port = ports.get(server.id)
            fixed = port.fixed_ips[0]["ip_address"] if port is not None and port.fixed_ips else ""
            public = fips.get(port.id) if port is not None else None
            if public:
                url = f"http://{public}/"
            rows.append(
                {
                    "server": server.name,
                    "roles": (server.metadata or {}).get("faafo_role", ""),
                    "addresses": ", ".join(a for a in (fixed, public) if a),
                    "state": server.status,
                }
            )
        summary = self.balancer().summary() if octavia.available(self.conn) else None
        if summary is not None:
            rows.append(
                {
                    "server": summary.name,
                    "roles": "octavia load balancer",
                    "addresses": ", ".join(a for a in (summary.vip, summary.floating_ip) if a),
                    "state": f"{summary.provisioning}/{summary.operating}",
                }
            )
            url = f"http://{summary.floating_ip}/" if summary.floating_ip else None
        return rows, url


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()
