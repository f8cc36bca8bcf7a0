"""Smoke tests of the OpenStack test bed, through openstacksdk as a user would.

They prove the bed can carry what ``faafo deploy`` needs: key pairs, security
groups with group-to-group rules, servers with user data, floating IPs, and
Heat stacks with wait conditions and a scalable autoscaling group. Everything
they create is deleted again, and checked gone.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.openstack,
    # The first test may bring the bed up (a few minutes on a cold machine).
    pytest.mark.timeout(900),
    # openstacksdk warns about its own internals on nearly every call.
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack"),
]

STACK_TEMPLATE = Path(__file__).resolve().parent / "stacks" / "smoke.yaml"
IMAGE = "Ubuntu QCOW2"
USER_DATA = "#cloud-config\nruncmd:\n  - [echo, faafo smoke test]\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def public_key() -> str:
    """A fresh OpenSSH public key (nova no longer generates key pairs)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode()


def gone(fetch: Callable[[], Any]) -> bool:
    """True when the API answers 404 for the resource."""
    from openstack import exceptions

    try:
        fetch()
    except exceptions.NotFoundException:
        return True
    return False


def eventually(check: Callable[[], Any], what: str, timeout: float = 120,
               interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def test_server_with_key_groups_user_data_and_floating_ip(openstack_demo, openstack_admin,
                                                            openstack_cleanup):
    demo, name = openstack_demo, unique("smoke")
    image = demo.image.find_image(IMAGE, ignore_missing=False)
    flavor = demo.compute.find_flavor("m1.small", ignore_missing=False)
    network = demo.network.find_network("private", ignore_missing=False)
    public = demo.network.find_network("public", ignore_missing=False)

    keypair = demo.compute.create_keypair(name=f"{name}-key", public_key=public_key())
    openstack_cleanup(lambda: demo.compute.delete_keypair(keypair, ignore_missing=True))
    api = demo.network.create_security_group(name=f"{name}-api")
    openstack_cleanup(lambda: demo.network.delete_security_group(api, ignore_missing=True))
    broker = demo.network.create_security_group(name=f"{name}-broker")
    openstack_cleanup(lambda: demo.network.delete_security_group(broker, ignore_missing=True))
    rule = demo.network.create_security_group_rule(
        security_group_id=broker.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=5672, port_range_max=5672, remote_group_id=api.id)

    server = demo.compute.create_server(
        name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": network.id}],
        key_name=keypair.name, security_groups=[{"name": api.name}],
        user_data=base64.b64encode(USER_DATA.encode()).decode())
    openstack_cleanup(lambda: demo.compute.delete_server(server, ignore_missing=True))
    server = demo.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)

    assert server.key_name == keypair.name
    stored = openstack_admin.compute.get_server(server.id).user_data
    assert base64.b64decode(stored).decode() == USER_DATA
    [port] = list(demo.network.ports(device_id=server.id))
    assert port.status == "ACTIVE"
    assert port.security_group_ids == [api.id]
    rules = [r for r in demo.network.security_group_rules(security_group_id=broker.id)
             if r.direction == "ingress"]
    assert [(r.id, r.protocol, r.port_range_min, r.port_range_max, r.remote_group_id)
            for r in rules] == [(rule.id, "tcp", 5672, 5672, api.id)]

    floating = demo.network.create_ip(floating_network_id=public.id)
    openstack_cleanup(lambda: demo.network.delete_ip(floating, ignore_missing=True))
    floating = demo.network.update_ip(floating, port_id=port.id)
    assert floating.fixed_ip_address == port.fixed_ips[0]["ip_address"]
    assert floating.port_id == port.id

    # Delete everything as a user would, then see it gone.
    demo.network.delete_ip(floating)
    demo.compute.delete_server(server)
    demo.compute.wait_for_delete(server, wait=120, interval=1)
    demo.network.delete_security_group(broker)
    demo.network.delete_security_group(api)
    demo.compute.delete_keypair(keypair)
    assert gone(lambda: demo.network.get_ip(floating.id))
    assert gone(lambda: demo.compute.get_server(server.id))
    assert list(demo.network.ports(device_id=server.id)) == []
    assert gone(lambda: demo.network.get_security_group(api.id))
    assert gone(lambda: demo.network.get_security_group(broker.id))
    assert gone(lambda: demo.compute.get_keypair(keypair.name))


def _resource(demo, stack, name: str) -> dict[str, Any] | None:
    response = demo.orchestration.get(f"/stacks/{stack.name}/{stack.id}/resources/{name}")
    return response.json()["resource"] if response.status_code == 200 else None


def _outputs(demo, stack) -> dict[str, Any]:
    stack = demo.orchestration.get_stack(stack.id)
    return {output["output_key"]: output.get("output_value") for output in stack.outputs}


def _heat_users(admin, stack_name: str) -> set[str]:
    """The stack-domain users heat made for one stack (named after it), so that
    stacks of tests running beside this one do not count."""
    domain = admin.identity.find_domain("heat", ignore_missing=False)
    return {user.id for user in admin.identity.users(domain_id=domain.id)
            if (user.name or "").startswith(f"{stack_name}-")}


def test_heat_stack_wait_condition_and_autoscaling(openstack_demo, openstack_admin,
                                                   openstack_cleanup):
    import requests

    demo, name = openstack_demo, unique("smoke")
    stack = demo.orchestration.create_stack(name=name, template=STACK_TEMPLATE.read_text())
    stack = demo.orchestration.get_stack(stack.id)
    openstack_cleanup(lambda: demo.orchestration.delete_stack(stack, ignore_missing=True))

    # The server's user data carries the handle's signal command, as a guest
    # would run it; the test plays the guest and signals through the handle.
    handle = eventually(
        lambda: (r := _resource(demo, stack, "ready_handle")) and
        r["resource_status"] == "CREATE_COMPLETE" and r, "the wait condition handle")
    endpoint, token = handle["attributes"]["endpoint"], handle["attributes"]["token"]
    web = eventually(lambda: (r := _resource(demo, stack, "web")) and r["physical_resource_id"],
                     "the server resource")
    stored = base64.b64decode(openstack_admin.compute.get_server(web).user_data).decode()
    assert endpoint in stored
    assert demo.orchestration.get_stack(stack.id).status == "CREATE_IN_PROGRESS"
    assert _heat_users(openstack_admin, name), "the wait handle has its stack-domain user"

    signal = requests.post(endpoint, headers={"X-Auth-Token": token},
                           json={"status": "SUCCESS", "id": "web", "data": "ready"}, timeout=30)
    assert signal.status_code == 200, signal.text
    stack = demo.orchestration.wait_for_status(stack, "CREATE_COMPLETE",
                                               failures=["CREATE_FAILED"], interval=1, wait=300)
    outputs = _outputs(demo, stack)
    assert outputs["ready_data"] == '{"web": "ready"}'
    assert outputs["workers_size"] == 2
    assert demo.compute.get_server(outputs["web_id"]).status == "ACTIVE"
    assert demo.network.get_security_group(outputs["web_group_id"]) is not None

    # Scale up as an alarm would: a bare POST to the pre-signed URL.
    response = requests.post(outputs["scale_up_url"], timeout=60)
    assert response.status_code == 200, response.text
    outputs = eventually(lambda: (o := _outputs(demo, stack))["workers_size"] == 3 and o,
                         "the group to have 3 servers")
    for server_id in outputs["workers_ids"]:
        demo.compute.wait_for_server(demo.compute.get_server(server_id), wait=120, interval=1)

    demo.orchestration.delete_stack(stack)
    demo.orchestration.wait_for_delete(stack, wait=300, interval=1)
    assert gone(lambda: demo.orchestration.get_stack(stack.id))
    for server_id in [outputs["web_id"], *outputs["workers_ids"]]:
        assert gone(lambda server_id=server_id: demo.compute.get_server(server_id))
    assert gone(lambda: demo.network.get_security_group(outputs["web_group_id"]))
    assert _heat_users(openstack_admin, name) == set(), "deleting the stack removed its users"


def _settled(demo, lb_id: str):
    """The load balancer once Octavia's flow for the last change has finished."""
    return eventually(
        lambda: (lb := demo.load_balancer.get_load_balancer(lb_id)).provisioning_status
        in ("ACTIVE", "ERROR") and lb, "the load balancer to settle")


def test_octavia_load_balancer_through_the_flows_with_a_floating_ip(openstack_bed, openstack_demo,
                                                                     openstack_cleanup):
    """An Octavia load balancer, listener, pool, health monitor and member go
    ACTIVE through octavia-api, RPC and octavia-worker's flows; its VIP is a
    neutron port of the project that takes a floating IP; a cascade delete
    removes the port too."""
    if not openstack_bed.has_octavia:
        pytest.skip("the bed was brought up without Octavia")
    demo, name = openstack_demo, unique("smoke")
    subnet = demo.network.find_subnet("private-subnet", ignore_missing=False)
    public = demo.network.find_network("public", ignore_missing=False)
    lbs = demo.load_balancer
    lb = lbs.create_load_balancer(name=name, vip_subnet_id=subnet.id)
    openstack_cleanup(lambda: lbs.delete_load_balancer(lb.id, ignore_missing=True, cascade=True))
    assert _settled(demo, lb.id).provisioning_status == "ACTIVE"
    listener = lbs.create_listener(name=name, protocol="HTTP", protocol_port=80,
                                   load_balancer_id=lb.id)
    _settled(demo, lb.id)
    pool = lbs.create_pool(name=name, protocol="HTTP", lb_algorithm="ROUND_ROBIN",
                           listener_id=listener.id)
    _settled(demo, lb.id)
    monitor = lbs.create_health_monitor(pool_id=pool.id, type="HTTP", delay=5, timeout=3,
                                        max_retries=3, http_method="GET", url_path="/readyz",
                                        expected_codes="200")
    _settled(demo, lb.id)
    member = lbs.create_member(pool.id, address="10.0.0.200", protocol_port=80)
    lb = _settled(demo, lb.id)
    assert lb.provisioning_status == "ACTIVE"
    for item in (lbs.get_listener(listener.id), lbs.get_pool(pool.id),
                 lbs.get_health_monitor(monitor.id), lbs.get_member(member.id, pool.id)):
        assert item.provisioning_status == "ACTIVE", item
    assert lbs.get_health_monitor(monitor.id).operating_status == "ONLINE"

    vip = demo.network.get_port(lb.vip_port_id)
    assert (vip.project_id, vip.device_owner) == (lb.project_id, "Octavia")
    assert vip.fixed_ips == [{"subnet_id": subnet.id, "ip_address": lb.vip_address}]
    floating = demo.network.create_ip(floating_network_id=public.id, port_id=vip.id)
    openstack_cleanup(lambda: demo.network.delete_ip(floating, ignore_missing=True))
    assert floating.fixed_ip_address == lb.vip_address

    demo.network.delete_ip(floating)
    lbs.delete_load_balancer(lb.id, cascade=True)
    eventually(lambda: gone(lambda: lbs.get_load_balancer(lb.id)), "the load balancer to go")
    assert gone(lambda: demo.network.get_port(vip.id))
    assert gone(lambda: demo.network.get_ip(floating.id))
