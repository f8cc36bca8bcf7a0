"""The ``faafo autoscale --backend deploy`` back end: a deployment's worker count.

Resizing is a converge with another ``workers`` value, so the autoscaler and a
user running ``faafo deploy up --workers N`` go through the same code and
leave the same state behind.
"""

from __future__ import annotations

import os

import openstack
from faafo.deploy.converge import Deployment
from faafo.deploy.errors import DeployError
from faafo.deploy.state import load


class DeployedWorkers:
    """Workers of the deployment ``name`` on ``cloud`` (brought up from this machine)."""

    def __init__(self, cloud: str | None = None, name: str = "faafo") -> None:
        cloud = cloud or os.environ.get("OS_CLOUD")
        state = load(name, cloud)
        if state is None:
            raise DeployError(f"no deployment {name!r} on this machine: run faafo deploy up")
        if state.heat:
            raise DeployError("a Heat deployment: use --backend heat with its signal URLs")
        self.state = state
        self.conn = openstack.connect(cloud=cloud)

    def current(self) -> int:
        """Workers that exist now (whatever their state), by name and marker."""
        deployment = Deployment(self.conn, self.state)
        return sum(1 for s in deployment.servers() if "-worker-" in s.name)

    def resize(self, n: int) -> None:
        """Converge to ``n`` workers and remember it for the next ``up``."""
        self.state.workers = n
        self.state.save()
        Deployment(self.conn, self.state).up()
