"""What tests get from a running bed: where its clouds.yaml is, the cloud
names, the endpoints, and the logs to show when something fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import tail
from .settings import ADMIN_CLOUD, DEMO_CLOUD


@dataclass(frozen=True)
class Bed:
    """A running test bed.

    ``endpoints`` maps catalog service types (``identity``, ``compute``,
    ``network``, ``orchestration``, ``cloudformation``, ``image``,
    ``placement``, and ``load-balancer`` on a bed with Octavia) to their
    public URLs (orchestration's has keystone's ``%(project_id)s`` in it, as
    in the catalog).
    """

    state_dir: Path
    clouds_yaml: Path
    endpoints: dict[str, str]
    log_dir: Path
    venv: Path
    admin_cloud: str = ADMIN_CLOUD
    demo_cloud: str = DEMO_CLOUD
    #: Region, image, flavors and networks the bed provisioned.
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def has_octavia(self) -> bool:
        """Whether this bed runs Octavia (``bed.py up --without octavia`` does not)."""
        return "load-balancer" in self.endpoints

    @property
    def heat_url(self) -> str:
        return self.endpoints["orchestration"]

    @property
    def nova_url(self) -> str:
        return self.endpoints["compute"]

    @property
    def neutron_url(self) -> str:
        return self.endpoints["network"]

    def env(self, cloud: str | None = None) -> dict[str, str]:
        """Environment for a child process (``faafo deploy``, the openstack CLI)
        to reach the bed as ``cloud`` (demo by default)."""
        return {"OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml),
                "OS_CLOUD": cloud or self.demo_cloud}

    def connect(self, cloud: str | None = None) -> Any:
        """An openstacksdk connection in the caller's environment (the test's
        venv must have openstacksdk)."""
        from openstack import config, connection

        loader = config.OpenStackConfig(config_files=[str(self.clouds_yaml)])
        return connection.Connection(config=loader.get_one(cloud=cloud or self.demo_cloud))

    def log(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def log_tail(self, service: str, lines: int = 40) -> str:
        return tail(self.log(service), lines)

    def logs_summary(self, services: tuple[str, ...] = ("nova-compute", "nova-api",
                                                         "neutron-api", "heat-engine")) -> str:
        """The tails a failing test prints (and Octavia's, when it runs)."""
        if self.has_octavia:
            services = (*services, "octavia-api", "octavia-worker")
        return "\n".join(f"--- {name} ({self.log(name)}) ---\n{self.log_tail(name, 20)}"
                         for name in services)
