"""An Octavia network driver for a test bed where no amphora ever boots.

Octavia's own ``network_noop_driver`` invents a VIP port that neutron never
sees, so a client cannot attach a floating IP to a load balancer's VIP, which
is the one thing a user of a real cloud does with it. Its neutron driver
(``allowed_address_pairs_driver``) makes the VIP port for real, but also plugs
it into amphora servers and updates their ports, which do not exist here.

This driver takes both halves: the VIP port is made, validated and deleted in
neutron by Octavia's neutron driver (so it belongs to the load balancer's
project, carries ``device_owner`` Octavia and takes floating IPs), networks,
subnets and ports are looked up in neutron (so a wrong subnet is refused as on
a real cloud), and everything about plugging amphorae is the no-op driver's.
Octavia finds it through the ``octavia.network.drivers`` entry point named
``osbed``.
"""

from __future__ import annotations

from typing import Any

from octavia.network import base
from octavia.network.drivers.neutron.allowed_address_pairs import AllowedAddressPairsDriver
from octavia.network.drivers.noop_driver.driver import NoopNetworkDriver


class VipPortsNetworkDriver(NoopNetworkDriver):
    """Real VIP ports and look-ups in neutron; no-op amphora plumbing."""

    def __init__(self) -> None:
        super().__init__()
        self._neutron_driver: AllowedAddressPairsDriver | None = None

    @property
    def neutron(self) -> AllowedAddressPairsDriver:
        """Octavia's neutron driver, made on first use: it asks neutron for its
        extensions when constructed, and the API loads drivers at start-up."""
        if self._neutron_driver is None:
            self._neutron_driver = AllowedAddressPairsDriver()
        return self._neutron_driver

    # -- the VIP port: real -------------------------------------------------

    def allocate_vip(self, loadbalancer: Any) -> Any:
        return self.neutron.allocate_vip(loadbalancer)

    def deallocate_vip(self, vip: Any) -> None:
        self.neutron.deallocate_vip(vip)

    # -- look-ups: neutron's answers ---------------------------------------

    def get_network(self, network_id: str, context: Any = None) -> Any:
        return self.neutron.get_network(network_id, context=context)

    def get_subnet(self, subnet_id: str, context: Any = None) -> Any:
        return self.neutron.get_subnet(subnet_id, context=context)

    def get_port(self, port_id: str, context: Any = None) -> Any:
        """Neutron's port; the amphora-side ports the no-op plumbing invented
        exist only in its own records, so those come from there."""
        try:
            return self.neutron.get_port(port_id, context=context)
        except base.PortNotFound:
            return super().get_port(port_id, context=context)

    def get_network_ip_availability(self, network: Any) -> Any:
        return self.neutron.get_network_ip_availability(network)

    def get_security_group_by_id(self, sg_id: str, context: Any = None) -> Any:
        return self.neutron.get_security_group_by_id(sg_id, context=context)
