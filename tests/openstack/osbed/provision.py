"""Fill a freshly started bed through its own APIs (runs in the bed's venv).

This file is run as a script by the bed's Python, which has openstacksdk (heat
depends on it), so bring-up itself needs nothing beyond the standard library
on the caller's side. Input is one JSON object on stdin; a failure ends with a
line ``OSBED-ERROR {"service": ..., "reason": ...}`` naming the service whose
log explains it.

Phases:
- ``identity``: service project and users (with the ``service`` role, or
  neutron rejects nova's service tokens), the catalog, the ``demo`` project and
  user, heat's stack-user domain;
- ``resources``: once nova-compute is up, map it into the cell, then the
  seed's flavors, a tiny image named ``Ubuntu QCOW2``, the external network
  ``public`` with a floating-IP pool and demo's ``private`` network and router;
  on a bed with Octavia, check that demo can list load balancers (keystone,
  the policy and octavia's database all answer).

Octavia (user, catalog entry ``load-balancer``) is there only when the
endpoints passed in name it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import openstack

DOMAIN = "Default"
SERVICE_USERS = ("placement", "glance", "nova", "neutron", "heat")
OPTIONAL_SERVICE_USERS = {"load-balancer": "octavia"}
ROLES = ("admin", "member", "reader", "service", "heat_stack_owner", "heat_stack_user")
#: catalog entries: (service name, type, the endpoints dict key)
CATALOG = (
    ("placement", "placement", "placement"),
    ("glance", "image", "image"),
    ("nova", "compute", "compute"),
    ("neutron", "network", "network"),
    ("heat", "orchestration", "orchestration"),
    ("heat-cfn", "cloudformation", "cloudformation"),
    ("octavia", "load-balancer", "load-balancer"),
)
#: The classic flavors; the seed asked for id "2" (m1.small).
FLAVORS = (
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 1, 20),
    ("3", "m1.medium", 4096, 2, 40),
    ("4", "m1.large", 8192, 4, 80),
    ("5", "m1.xlarge", 16384, 8, 160),
)
IMAGE_NAME = "Ubuntu QCOW2"
#: Glance checks uploaded bytes against disk_format, so the dummy image is
#: honest "raw" data (zeros), whatever its seed-given name says.
IMAGE_BYTES = bytes(64 * 1024)
PUBLIC_CIDR = "203.0.113.0/24"  # TEST-NET-3: never routed, only database state here
PRIVATE_CIDR = "10.0.0.0/24"


class Failure(Exception):
    def __init__(self, service: str, reason: str):
        super().__init__(reason)
        self.service = service
        self.reason = reason


def connect(cfg: dict[str, Any], user: str, project: str, password: str) -> Any:
    return openstack.connect(
        auth_url=cfg["keystone_url"], username=user, password=password, project_name=project,
        user_domain_name=DOMAIN, project_domain_name=DOMAIN, region_name=cfg["region"],
        interface="public", identity_api_version="3",
    )


def wait_for(what: str, service: str, check: Callable[[], Any], timeout: float,
             interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # keep polling: the service may still be starting
            last_error = error
        time.sleep(interval)
    raise Failure(service, f"timed out after {timeout:.0f} s waiting for {what}"
                  + (f" (last error: {last_error})" if last_error else ""))


# -- identity -----------------------------------------------------------------

def identity(cfg: dict[str, Any]) -> None:
    conn = connect(cfg, "admin", "admin", cfg["admin_password"])
    ident = conn.identity
    domain = ident.find_domain(DOMAIN)
    roles = {name: ident.find_role(name) or ident.create_role(name=name) for name in ROLES}

    service_project = ident.create_project(name="service", domain_id=domain.id)
    optional = [user for key, user in OPTIONAL_SERVICE_USERS.items() if key in cfg["endpoints"]]
    for name in (*SERVICE_USERS, *optional):
        user = ident.create_user(name=name, password=cfg["service_password"], domain_id=domain.id)
        for role in ("admin", "service"):
            ident.assign_project_role_to_user(service_project, user, roles[role])

    for name, service_type, key in CATALOG:
        if key not in cfg["endpoints"]:
            continue
        service = ident.create_service(name=name, type=service_type, is_enabled=True)
        for interface in ("public", "internal", "admin"):
            ident.create_endpoint(service_id=service.id, interface=interface,
                                  url=cfg["endpoints"][key], region_id=cfg["region"])

    demo_project = ident.create_project(name="demo", domain_id=domain.id)
    demo = ident.create_user(name="demo", password=cfg["demo_password"], domain_id=domain.id,
                             default_project_id=demo_project.id)
    for role in ("member", "heat_stack_owner"):
        ident.assign_project_role_to_user(demo_project, demo, roles[role])
    admin_user = ident.find_user("admin", domain_id=domain.id)
    ident.assign_project_role_to_user(demo_project, admin_user, roles["admin"])

    # Heat makes a keystone user per wait condition handle or signalled
    # resource, in a domain of its own administered by this user.
    heat_domain = ident.create_domain(name="heat", description="heat stack users")
    heat_admin = ident.create_user(name="heat_domain_admin", password=cfg["service_password"],
                                   domain_id=heat_domain.id)
    ident.assign_domain_role_to_user(heat_domain, heat_admin, roles["admin"])


# -- resources ----------------------------------------------------------------

def _compute_services_up(conn: Any) -> bool:
    states = {svc.binary: svc.state for svc in conn.compute.services()}
    wanted = ("nova-conductor", "nova-scheduler", "nova-compute")
    return all(states.get(binary) == "up" for binary in wanted)


def _discovered(conn: Any, discover_argv: list[str]) -> bool:
    subprocess.run(discover_argv, check=True, capture_output=True, timeout=120)
    return any(True for _ in conn.compute.hypervisors())


def _provider_ready(conn: Any) -> bool:
    for provider in conn.placement.resource_providers():
        inventories = list(conn.placement.resource_provider_inventories(provider))
        if any(inv.resource_class == "VCPU" for inv in inventories):
            return True
    return False


def resources(cfg: dict[str, Any]) -> None:
    admin = connect(cfg, "admin", "admin", cfg["admin_password"])
    wait_for("nova's conductor, scheduler and compute to report up", "nova-compute",
             lambda: _compute_services_up(admin), timeout=180)
    wait_for("nova-compute's hypervisor to be discovered into cell1", "nova-compute",
             lambda: _discovered(admin, cfg["discover_hosts"]), timeout=120, interval=2)
    wait_for("the hypervisor's inventory in placement", "placement",
             lambda: _provider_ready(admin), timeout=120)

    for flavor_id, name, ram, vcpus, disk in FLAVORS:
        admin.compute.create_flavor(id=flavor_id, name=name, ram=ram, vcpus=vcpus, disk=disk,
                                    is_public=True)

    try:
        admin.image.create_image(IMAGE_NAME, data=IMAGE_BYTES, disk_format="raw",
                                 container_format="bare", visibility="public", wait=True,
                                 timeout=120)
    except Exception as error:
        raise Failure("glance", f"could not upload the image {IMAGE_NAME!r}: {error}") from error

    try:
        _networks(cfg, admin)
    except openstack.exceptions.SDKException as error:
        raise Failure("neutron-api", f"could not create the networks: {error}") from error

    if "load-balancer" in cfg["endpoints"]:
        demo = connect(cfg, "demo", "demo", cfg["demo_password"])
        wait_for("octavia-api to list demo's load balancers", "octavia-api",
                 lambda: list(demo.load_balancer.load_balancers()) == [], timeout=120)


def _networks(cfg: dict[str, Any], admin: Any) -> None:
    net = admin.network
    public = net.create_network(name="public", is_router_external=True,
                                provider_network_type="flat",
                                provider_physical_network="public")
    prefix = PUBLIC_CIDR.rsplit(".", 1)[0]
    net.create_subnet(network_id=public.id, name="public-subnet", ip_version=4,
                      cidr=PUBLIC_CIDR, gateway_ip=f"{prefix}.1", is_dhcp_enabled=False,
                      allocation_pools=[{"start": f"{prefix}.10", "end": f"{prefix}.250"}])

    demo = connect(cfg, "demo", "demo", cfg["demo_password"]).network
    private = demo.create_network(name="private")
    subnet = demo.create_subnet(network_id=private.id, name="private-subnet", ip_version=4,
                                cidr=PRIVATE_CIDR, dns_nameservers=[])
    router = demo.create_router(name="router1", external_gateway_info={"network_id": public.id})
    demo.add_interface_to_router(router, subnet_id=subnet.id)


def main() -> int:
    phase = sys.argv[1]
    cfg = json.load(sys.stdin)
    started = time.monotonic()
    try:
        {"identity": identity, "resources": resources}[phase](cfg)
    except Failure as failure:
        print("OSBED-ERROR " + json.dumps({"service": failure.service, "reason": failure.reason}))
        return 3
    except openstack.exceptions.SDKException as error:
        service = "keystone" if phase == "identity" else "nova-api"
        print("OSBED-ERROR " + json.dumps({"service": service, "reason": str(error)}))
        return 3
    print(f"provision {phase}: done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
