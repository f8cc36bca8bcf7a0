"""The driver itself; neutron finds it through the ``neutron.ml2.mechanism_drivers``
entry point named ``osbed``."""

from __future__ import annotations

from typing import Any

# Neutron's GET /v2.0/ports names ``Port.port_forwardings``, a backref that only
# exists once this model module is imported and SQLAlchemy has configured the
# mappers; neutron gets there on the way to other requests (floating IPs), so an
# API worker whose first request was a port listing answered 500. Every API
# worker loads this driver at start-up: see ``initialize``.
import neutron.db.models.port_forwarding  # noqa: F401
from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

#: What nova reads from the binding. ``other`` is a VIF type no hypervisor driver
#: acts on, which is right: nova's fake driver plugs nothing.
VIF_TYPE = portbindings.VIF_TYPE_OTHER
VIF_DETAILS: dict[str, Any] = {
    portbindings.VIF_DETAILS_CONNECTIVITY: portbindings.CONNECTIVITY_L2,
    portbindings.CAP_PORT_FILTER: True,
}


class BindEverythingDriver(api.MechanismDriver):
    """Binds each port to the first segment offered, with no agent involved.

    Unlike neutron's bundled ``test`` driver, it makes no assertions about
    unit-test invariants, so a real API flow (nova creating and binding ports,
    routers, floating IPs) goes through.
    """

    def initialize(self) -> None:
        """Nothing to connect to (no agent, no controller); but make the models'
        backrefs exist now, so that a worker's first port listing works."""
        from sqlalchemy import orm

        orm.configure_mappers()

    @property
    def connectivity(self) -> str:
        """Plain L2, so neutron's segment checks accept our bindings."""
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context: api.PortContext) -> None:
        """Accept the port on the first segment; it is ACTIVE immediately,
        as if an agent had wired it."""
        for segment in context.segments_to_bind or []:
            context.set_binding(
                segment[api.ID], VIF_TYPE, dict(VIF_DETAILS), status=constants.PORT_STATUS_ACTIVE
            )
            return
