"""The seed's three topologies as data: servers, roles and security groups.

Kept free of any cloud calls so that the tests can compare the model with the
seed's rules directly, and so that ``up`` (direct) and the Heat templates are
checked against one description.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TOPOLOGIES = ("aio", "split", "scaled")

SSH, HTTP, AMQP, MYSQL = 22, 80, 5672, 3306


@dataclass(frozen=True)
class Rule:
    """One ingress TCP rule: from anywhere (``remote_group`` None) or from a group."""

    port: int
    remote_group: str | None = None


@dataclass(frozen=True)
class Group:
    """A security group by its short name (the cloud name is ``PREFIX-short``)."""

    name: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Server:
    """One server: its short name, group, install.sh components and roles."""

    name: str
    group: str
    install: tuple[str, ...]
    roles: tuple[str, ...] = ()
    public: bool = False
    kind: str = ""  # services | controller | api | worker | lb | aio

    @property
    def label(self) -> str:
        """What ``status`` shows in its roles column."""
        return ",".join([*(f"+{i}" for i in self.install), *self.roles])


@dataclass(frozen=True)
class Plan:
    """Everything one deployment consists of, in creation order."""

    topology: str
    groups: tuple[Group, ...]
    servers: tuple[Server, ...] = field(default=())

    def group(self, name: str) -> Group:
        """The group called ``name``."""
        return next(g for g in self.groups if g.name == name)


LOAD_BALANCERS = ("haproxy", "octavia")


def groups(topology: str, lb: str = "haproxy") -> tuple[Group, ...]:
    """The seed's security groups for ``topology`` (faafo-v1.md, "Topologies").

    The scaled topology adds ``lb`` for the HAProxy server the seed did not have
    (it gave every API a floating IP instead); it only opens SSH and HTTP. With
    an Octavia load balancer (``lb="octavia"``) there is no such server and no
    ``lb`` group: the API group's HTTP rule already admits the VIP.
    """
    if lb not in LOAD_BALANCERS:
        raise ValueError(f"unknown load balancer {lb!r}: one of {', '.join(LOAD_BALANCERS)}")
    if topology == "aio":
        return (Group("aio", (Rule(SSH), Rule(HTTP))),)
    if topology == "split":
        return (
            Group("control", (Rule(SSH), Rule(HTTP), Rule(AMQP, "worker"))),
            Group("worker", (Rule(SSH),)),
        )
    if topology == "scaled":
        return (
            Group(
                "services",
                (Rule(SSH), Rule(MYSQL, "api"), Rule(AMQP, "worker"), Rule(AMQP, "api")),
            ),
            Group("api", (Rule(SSH), Rule(HTTP))),
            Group("worker", (Rule(SSH),)),
            *((Group("lb", (Rule(SSH), Rule(HTTP))),) if lb == "haproxy" else ()),
        )
    raise ValueError(f"unknown topology {topology!r}: one of {', '.join(TOPOLOGIES)}")


def plan(topology: str, apis: int = 2, workers: int = 1, lb: str = "haproxy") -> Plan:
    """The servers of ``topology`` with ``apis`` API servers and ``workers`` workers.

    ``lb`` (scaled only) is ``haproxy`` for a load-balancer server of our own or
    ``octavia`` when the cloud's Octavia balances and there is no such server.
    """
    if workers < 0 or apis < 1:
        raise ValueError("--workers must be 0 or more and --apis 1 or more")
    gs = groups(topology, lb)
    if topology == "aio":
        one = Server("app", "aio", ("faafo", "messaging"), ("api", "worker", "demo"), True, "aio")
        return Plan(topology, gs, (one,))
    workers_ = tuple(
        Server(f"worker-{i}", "worker", ("faafo",), ("worker",), False, "worker")
        for i in range(1, workers + 1)
    )
    if topology == "split":
        ctl = Server("controller", "control", ("faafo", "messaging"), ("api",), True, "controller")
        return Plan(topology, gs, (ctl, *workers_))
    services = Server("services", "services", ("messaging", "database"), (), False, "services")
    api = tuple(
        Server(f"api-{i}", "api", ("faafo",), ("api",), False, "api") for i in range(1, apis + 1)
    )
    if lb == "octavia":
        return Plan(topology, gs, (services, *api, *workers_))
    haproxy = Server("lb", "lb", ("loadbalancer",), (), True, "lb")
    return Plan(topology, gs, (services, *api, *workers_, haproxy))
