"""One bed's settings: ports, passwords and database names, chosen at ``up`` and
kept in ``state.json`` so ``status``, ``down`` and the pytest fixture read the
same values the services were configured with."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT_BASE = 28770
REGION = "RegionOne"

#: Every resource on this machine's shared servers carries this prefix, so
#: nothing collides with the app's own tests (which use ``faafo_``). A bed
#: with a state directory of its own (FAAFO_OPENSTACK_STATE) adds a tag
#: derived from it, so two beds on one machine never share a database.
PREFIX = "osbed"

#: API services, in port order from the base port.
API_PORTS = ("keystone", "placement", "glance", "nova-api", "neutron-api", "heat-api",
             "heat-api-cfn", "octavia-api")

#: Every bed gets all of them (an unused empty one costs nothing).
DATABASES = ("keystone", "placement", "glance", "nova_api", "nova_cell0", "nova", "neutron",
             "heat", "octavia")

#: ``FAAFO_OPENSTACK_OCTAVIA=0`` (or ``bed.py up --without octavia``) brings
#: the bed up without Octavia: a cloud with no ``load-balancer`` service, as
#: ``faafo deploy``'s HAProxy fallback expects to meet.
OCTAVIA_ENV = "FAAFO_OPENSTACK_OCTAVIA"


def octavia_wanted() -> bool | None:
    """What the environment asks for: True, False, or None (not said)."""
    value = os.environ.get(OCTAVIA_ENV)
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() not in ("0", "no", "false", "off")

ADMIN_CLOUD = "osbed-admin"
DEMO_CLOUD = "osbed-demo"


def _password() -> str:
    """URL-safe without quoting: these go into database and AMQP URLs."""
    return secrets.token_hex(12)


@dataclass
class Settings:
    port_base: int = DEFAULT_PORT_BASE
    prefix: str = PREFIX
    db_password: str = field(default_factory=_password)
    rabbit_password: str = field(default_factory=_password)
    service_password: str = field(default_factory=_password)
    admin_password: str = field(default_factory=_password)
    demo_password: str = field(default_factory=_password)
    #: Whether this bed runs Octavia (octavia-api, octavia-worker, the
    #: ``load-balancer`` catalog entry).
    octavia: bool = True

    @classmethod
    def fresh(cls, state: Path, default_state: Path, octavia: bool = True) -> Settings:
        base = int(os.environ.get("FAAFO_OPENSTACK_PORT_BASE", DEFAULT_PORT_BASE))
        prefix = PREFIX
        if state.resolve() != default_state.resolve():
            prefix += hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:6]
        return cls(port_base=base, prefix=prefix, octavia=octavia)

    # -- derived values ---------------------------------------------------
    def port(self, service: str) -> int:
        return self.port_base + API_PORTS.index(service)

    def url(self, service: str) -> str:
        return f"http://{HOST}:{self.port(service)}"

    @property
    def keystone_url(self) -> str:
        return self.url("keystone") + "/v3"

    @property
    def rabbit_user(self) -> str:
        return self.prefix

    @property
    def rabbit_vhost(self) -> str:
        return self.prefix

    @property
    def transport_url(self) -> str:
        return f"rabbit://{self.rabbit_user}:{self.rabbit_password}@{HOST}:5672/{self.rabbit_vhost}"

    @property
    def db_user(self) -> str:
        return self.prefix

    def database(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def db_url(self, name: str) -> str:
        return (f"mysql+pymysql://{self.db_user}:{self.db_password}@{HOST}:3306/"
                f"{self.database(name)}?charset=utf8")

    def endpoints(self) -> dict[str, str]:
        """The catalog's public URLs by service type (what a client sees)."""
        return {
            "identity": self.url("keystone"),
            "placement": self.url("placement"),
            "image": self.url("glance"),
            "compute": self.url("nova-api") + "/v2.1",
            "network": self.url("neutron-api"),
            "orchestration": self.url("heat-api") + "/v1/%(project_id)s",
            "cloudformation": self.url("heat-api-cfn") + "/v1",
            **({"load-balancer": self.url("octavia-api")} if self.octavia else {}),
        }

    # -- persistence --------------------------------------------------------
    def save(self, path: Path, **extra: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"settings": asdict(self), **extra}
        tmp = path.with_suffix(".tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            json.dump(data, out, indent=2)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> tuple[Settings, dict]:
        data = json.loads(path.read_text())
        return cls(**data.pop("settings")), data
