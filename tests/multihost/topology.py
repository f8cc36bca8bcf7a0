"""The seed's Figure 18 on one machine: services, two APIs behind HAProxy, three workers.

Every role is brought up by ``deploy/install.sh`` run on its host, with the
URLs a deployment would give it: the same script a real machine (or cloud-init)
runs, so these tests prove the script as much as the app. Only what cannot be
real on one machine is adapted, through the script's environment: the files
of each host live under its own ``FAAFO_PREFIX``, nothing is installed
(``FAAFO_PYTHON`` is the interpreter running the tests, ``FAAFO_NO_APT=1``),
and services run under the script's own supervisor since there is no systemd.

Each host's firewall is the shipped deploy/firewall/ROLE.rules (see firewall.py),
the seed's security groups becoming address blocks::

    client   10.99.0.100   the outside world (browsers, the CLI); the administrators
    monitor  10.99.0.9     Prometheus: scrapes the APIs and the workers directly
    lb       10.99.0.10    HAProxy, port 80 from anywhere
    api-N    10.99.0.16+N  port 80 from the balancer, the workers and Prometheus
    worker-N 10.99.0.32+N  metrics port 9100 from Prometheus, nothing else
    services 10.99.0.2     5672 from APIs and workers, 5432 and 3306 from APIs only
"""

from __future__ import annotations

import configparser
import json
import secrets
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from multihost import firewall
from multihost.network import Host, Network

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"
AGENT = Path(__file__).with_name("agent.py")

SERVICES = "10.99.0.2"
MONITOR = "10.99.0.9"
LB = "10.99.0.10"
CLIENT = "10.99.0.100"
API_BLOCK = "10.99.0.16/28"
WORKER_BLOCK = "10.99.0.32/28"
API_PORT = 80
WORKER_METRICS_PORT = 9100


def api_address(n: int) -> str:
    return f"10.99.0.{16 + n}"


def worker_address(n: int) -> str:
    return f"10.99.0.{32 + n}"


# The placeholders of deploy/firewall/*.rules for this range: install.sh -f fills
# them in from -a GROUP=SOURCES on a real host.
FIREWALL = {
    "ADMIN_HOSTS": CLIENT,
    "CLIENT_HOSTS": "0.0.0.0/0",
    "LOADBALANCER_HOSTS": LB,
    "API_HOSTS": API_BLOCK,
    "WORKER_HOSTS": WORKER_BLOCK,
    "PROMETHEUS_HOSTS": MONITOR,
    "API_PORT": str(API_PORT),
    "WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
}

# Shorter than production so that failures recover within a test's time:
# a lost task is sent again 10 s after its worker stopped renewing it.
API_OPTIONS = ["api.lease_seconds=10", "api.reconcile_interval=2"]
# Each worker host renders with one thread, like a one-core instance.
WORKER_OPTIONS = ["worker.render_threads=1", "worker.upload_retry_seconds=120"]


class Agent:
    """Requests made from a host (see agent.py); one request at a time."""

    def __init__(self, host: Host, token: str) -> None:
        self.host = host
        self.token = token
        self._lock = threading.Lock()
        self._process = host.popen([sys.executable, str(AGENT)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, bufsize=1)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self._process.stdin and self._process.stdout
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the agent on {self.host.name} died")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def request(self, method: str, url: str, timeout: float = 30, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kwargs.pop("headers", None) or {})
        return self._ask({"op": "http", "method": method, "url": url, "headers": headers,
                          "timeout": timeout, **kwargs})

    def ok(self, method: str, url: str, **kwargs: Any) -> Any:
        """The JSON body of a request that must succeed."""
        answer = self.request(method, url, **kwargs)
        if answer["status"] is None or answer["status"] >= 400:
            raise AssertionError(f"{method} {url} from {self.host.name}: {answer}")
        return answer["body"]

    def can_connect(self, address: str, port: int, timeout: float = 1.0) -> bool:
        return bool(self.connect(address, port, timeout)["ok"])

    def connect(self, address: str, port: int, timeout: float = 1.0) -> dict[str, Any]:
        """``{"ok": bool, "error": repr}``: refused and timed out are told apart."""
        return self._ask({"op": "connect", "host": address, "port": port, "timeout": timeout})

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)


class Topology:
    """Builds the hosts, runs the roles, and puts things back after a test broke them."""

    def __init__(self, workdir: Path, tag: str | None = None) -> None:
        self.workdir = workdir
        self.network = Network(workdir / "hosts", tag)
        # Hex: URL-safe, and never starting with "-" (rabbitmqctl would read an option).
        self.mq_password = secrets.token_hex(12)
        self.db_password = secrets.token_hex(12)
        self.client_token = secrets.token_hex(16)
        self.worker_token = secrets.token_hex(16)
        self.apis = 2
        self.workers: list[str] = []
        self._agents: dict[str, Agent] = {}

    _SECRETS = ("mq_password", "db_password", "client_token", "worker_token")

    def state(self) -> dict[str, Any]:
        """What another process of the same run needs to use this topology (see attach)."""
        return {"workdir": str(self.workdir), "tag": self.network.tag,
                "hosts": {name: host.address for name, host in self.network.hosts.items()},
                "workers": self.workers, **{key: getattr(self, key) for key in self._SECRETS}}

    @classmethod
    def attach(cls, state: dict[str, Any]) -> Topology:
        """The topology another process (an xdist worker of the same run) built."""
        topology = cls(Path(state["workdir"]), state["tag"])
        for key in cls._SECRETS:
            setattr(topology, key, state[key])
        for name, address in state["hosts"].items():
            topology.network.attach_host(name, address)
        topology.workers = list(state["workers"])
        return topology

    @property
    def transport_url(self) -> str:
        return f"amqp://faafo:{self.mq_password}@{SERVICES}:5672/faafo"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg://faafo:{self.db_password}@{SERVICES}/faafo"

    # -- hosts and roles -------------------------------------------------------

    @property
    def url(self) -> str:
        """The app's public address: the load balancer."""
        return f"http://{LB}"

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def install(self, name: str, *args: str, timeout: float = 240) -> None:
        """Run deploy/install.sh on a host, as its user data would."""
        env = {"FAAFO_PREFIX": str(self.host(name).root), "FAAFO_PYTHON": sys.executable,
               "FAAFO_NO_APT": "1", "FAAFO_SUPERVISOR": "background",
               "FAAFO_STOP_TIMEOUT": "20"}
        self.host(name).run(["bash", str(INSTALL), *args], env=env, timeout=timeout)

    def add_host(self, name: str, address: str, role: str | None) -> Host:
        """A new host behind the shipped firewall of its role (none: outside the deployment).

        Run the role itself on it with install().
        """
        host = self.network.add_host(name, address)
        if role is not None:
            firewall.apply(host, role, FIREWALL)
        return host

    def build(self) -> None:
        self.network.create()
        self.add_host("services", SERVICES, "services")
        self.add_host("lb", LB, "loadbalancer")
        self.add_host("client", CLIENT, None)
        self.add_host("monitor", MONITOR, None)
        for n in (1, 2):
            self.add_host(f"api-{n}", api_address(n), "api")
        with ThreadPoolExecutor(4) as pool:
            jobs = [
                pool.submit(self.install, "services", "-i", "messaging", "-i", "database",
                            "-m", self.transport_url, "-d", self.database_url),
                pool.submit(self.install, "lb", "-i", "loadbalancer", "-b",
                            ",".join(f"{api_address(n)}:{API_PORT}" for n in (1, 2))),
            ]
            for job in jobs:
                job.result()
            for job in [pool.submit(self.start_api, n) for n in (1, 2)]:
                job.result()
        self.wait_api_ready(1)
        self.wait_api_ready(2)
        self.wait_balanced()
        for n in (1, 2, 3):
            self.add_worker(n)

    def start_api(self, n: int) -> None:
        extra = [a for option in API_OPTIONS for a in ("-o", option)]
        self.install(f"api-{n}", "-i", "faafo", "-r", "api", "-m", self.transport_url,
                     "-d", self.database_url, "-t", self.client_token, "-w", self.worker_token,
                     *extra)

    def wait_api_ready(self, n: int, timeout: float = 90) -> None:
        url = f"http://{api_address(n)}:{API_PORT}/readyz"
        self.wait(lambda: self.agent("lb").request("GET", url, timeout=3)["status"] == 200,
                  timeout, f"api-{n} ready", f"api-{n}")

    def balancer_status(self) -> dict[str, str]:
        """HAProxy's view of the API servers (``UP``, ``DOWN``...), from its local stats page."""
        answer = self.agent("lb").request("GET", "http://127.0.0.1:8404/stats;csv", timeout=3)
        status = {}
        for line in answer.get("text", "").splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == "faafo-api" and fields[1].startswith("api-"):
                status[fields[1]] = fields[17]
        return status

    def wait_balanced(self, timeout: float = 30) -> None:
        """Until HAProxy sends traffic to both APIs again (its checks need two passes)."""
        self.wait(lambda: set(self.balancer_status().values()) == {"UP"}
                  and len(self.balancer_status()) == self.apis, timeout, "both APIs UP in HAProxy",
                  "lb")

    def add_worker(self, n: int, extra: tuple[str, ...] = (), endpoint: str | None = None) -> Host:
        """A new worker host, cabled, firewalled, and its role started: nothing else changes.

        It delivers through the load balancer unless ``endpoint`` says otherwise
        (a list of API addresses, say); running it again on a worker converges.
        """
        name = f"worker-{n}"
        if name not in self.network.hosts:
            self.add_host(name, worker_address(n), "worker")
        options = [a for option in (*WORKER_OPTIONS, *extra) for a in ("-o", option)]
        self.install(name, "-i", "faafo", "-r", "worker", "-e", endpoint or self.url,
                     "-m", self.transport_url, "-w", self.worker_token, *options)
        if name not in self.workers:
            self.workers.append(name)
        return self.host(name)

    def remove_worker(self, name: str) -> None:
        self.stop_role(name, "faafo-worker")
        self.network.remove_host(name)
        self.workers.remove(name)

    def stop_role(self, name: str, service: str) -> None:
        """A graceful stop through the supervisor (SIGTERM, as systemctl stop)."""
        pid = self.pid(name, service, child=False)
        if pid is None:
            return
        self.host(name).run(["kill", "-TERM", str(pid)], check=False)
        self.wait(lambda: self.pid(name, service, child=False) is None, 40,
                  f"{service} stopped on {name}")

    def pid(self, name: str, service: str, child: bool = True) -> int | None:
        """The pid of a supervised service (or of its supervisor), if it runs."""
        suffix = ".child.pid" if child else ".pid"
        path = self.host(name).path(f"run/faafo/{service}{suffix}")
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid in self.host(name).pids() else None

    def log(self, name: str, service: str, lines: int = 60) -> str:
        path = self.host(name).path(f"var/log/faafo/{service}.log")
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def logs(self) -> str:
        """The tail of every service's log, for assertion messages."""
        parts = []
        for name in ("lb", "api-1", "api-2", *self.workers):
            if name in self.network.hosts:
                for service in ("haproxy", "faafo-api", "faafo-worker"):
                    text = self.log(name, service, 25)
                    if text:
                        parts.append(f"--- {name} {service}\n{text}")
        return "\n".join(parts)

    # -- requests ---------------------------------------------------------------

    def agent(self, name: str = "client") -> Agent:
        if name not in self._agents:
            self._agents[name] = Agent(self.host(name), self.client_token)
        return self._agents[name]

    def new_agent(self, name: str = "client") -> Agent:
        """An agent of one's own, for a thread that must not share one."""
        return Agent(self.host(name), self.client_token)

    def wait(self, predicate: Any, timeout: float, what: str, *hosts: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (AssertionError, RuntimeError):
                pass
            time.sleep(0.3)
        services = ("faafo-api", "faafo-worker", "haproxy")
        details = "\n".join(f"--- {h}\n" + "".join(self.log(h, s) for s in services)
                             for h in hosts if h in self.network.hosts)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{details}")

    def create(self, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = self.agent().ok("POST", f"{self.url}/v1/fractal", json=tasks, timeout=60)
        return list(body["objects"])

    def wait_batch(self, batch: str, total: int, timeout: float) -> dict[str, Any]:
        status: dict[str, Any] = {}

        def finished() -> bool:
            nonlocal status
            status = self.agent().ok("GET", f"{self.url}/v1/batch/{batch}")
            return bool(status["finished"]) and status["total"] == total

        try:
            self.wait(finished, timeout, f"batch {batch}")
        except AssertionError as error:
            raise AssertionError(f"{error}: {status}\n{self.logs()}") from None
        return status

    def records(self, batch: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.agent().ok("GET", f"{self.url}/v1/fractal",
                                   params={"batch": batch, "page": page, "results_per_page": 100})
            rows += body["objects"]
            if page >= body["total_pages"]:
                return rows
            page += 1

    # -- repair -----------------------------------------------------------------

    def heal(self) -> None:
        """Back to the baseline: both APIs and worker-1..3 running, every cable in."""
        for name in list(self.workers):
            if name not in ("worker-1", "worker-2", "worker-3"):
                self.remove_worker(name)
        for name in self.network.hosts:
            self.network.plug(name)
        for n in (1, 2):
            if self.pid(f"api-{n}", "faafo-api") is None:
                self.start_api(n)
        for n in (1, 2):
            self.wait_api_ready(n)
        self.wait_balanced()
        for n in (1, 2, 3):
            name = f"worker-{n}"
            if self.pid(name, "faafo-worker") is None or self.endpoint_of(name) != self.url:
                self.add_worker(n)

    def endpoint_of(self, name: str) -> str | None:
        """The endpoint_url install.sh wrote into a worker's configuration."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.host(name).path("etc/faafo/faafo.conf"))
        return parser.get("worker", "endpoint_url", fallback=None)

    def close_agents(self) -> None:
        for agent in self._agents.values():
            agent.close()
        self._agents.clear()

    def destroy(self) -> None:
        """Every host, process and file of the topology (not the workdir itself)."""
        self.close_agents()
        self.network.destroy()
