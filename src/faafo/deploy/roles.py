"""Which install.sh flags and URLs each server of a plan gets, from the chosen addresses.

Ports are created before servers, so every private address is known before any
user data is written: workers can be told the API addresses and every host the
broker's, without a second pass.
"""

from __future__ import annotations

from faafo.deploy.state import State
from faafo.deploy.topology import AMQP, HTTP, MYSQL, Plan
from faafo.deploy.userdata import Role

BROKER_USER = "faafo"  # RabbitMQ's own user: install.sh deletes guest
DB_USER = "faafo"


def roles(
    plan: Plan, addresses: dict[str, str], state: State, lb_address: str | None = None
) -> dict[str, Role]:
    """install.sh invocations by server short name.

    ``lb_address`` is the Octavia load balancer's VIP (scaled with Octavia):
    workers then deliver results through it, as the seed's figure has them do;
    without one they get the list of API addresses and fail over themselves.
    """
    s = state.secrets
    tokens = {"FAAFO_CLIENT_TOKEN": s.client_token, "FAAFO_WORKER_TOKEN": s.worker_token}
    pip = {"FAAFO_PIP_SOURCE": state.pip_source}
    if plan.topology == "aio":
        broker = "127.0.0.1"
        endpoint = f"http://127.0.0.1:{HTTP}"
    elif plan.topology == "split":
        broker = addresses["controller"]
        endpoint = f"http://{broker}:{HTTP}"
    else:
        broker = addresses["services"]
        apis = [a for a in plan.servers if a.kind == "api"]
        endpoint = ",".join(f"http://{addresses[a.name]}:{HTTP}" for a in apis)
        if lb_address:
            endpoint = f"http://{lb_address}:{HTTP}"
    transport = f"amqp://{BROKER_USER}:{s.broker_password}@{broker}:{AMQP}/faafo"
    database = (
        f"mysql+pymysql://{DB_USER}:{s.database_password}@{addresses['services']}:{MYSQL}/faafo"
        if plan.topology == "scaled"
        else ""
    )
    out: dict[str, Role] = {}
    for server in plan.servers:
        env = {"FAAFO_TRANSPORT_URL": transport}
        backends = ""
        if server.kind == "services":
            env["FAAFO_DATABASE_URL"] = database
        elif server.kind == "lb":
            env = {}
            apis = [a for a in plan.servers if a.kind == "api"]
            backends = ",".join(f"{addresses[a.name]}:{HTTP}" for a in apis)
        else:
            env |= tokens | pip | {"FAAFO_ENDPOINT_URL": endpoint}
            if database and server.kind == "api":
                env["FAAFO_DATABASE_URL"] = database
        out[server.name] = Role(server.install, server.roles, env, backends)
    return out
