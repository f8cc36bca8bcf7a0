"""Bring the bed up (``down`` and ``status`` are in control.py).

``up`` goes from nothing: it builds (or reuses) the venv, gives the bed fresh
databases and a fresh vhost, writes the configs, prepares schemas in
parallel, starts keystone and fills the identity service, starts everything
else, waits until each API answers and each RPC worker consumes its queue, then
provisions flavors, the image and the networks. A bed that is already up (same
venv, every process alive, keystone answering) is reused as is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import infra, procs, services
from .clouds import write_clouds_yaml
from .configs import render_all
from .errors import BedError
from .handle import Bed
from .locking import file_lock
from .memory import GIB, PeakSampler
from .paths import HERE, Layout, default_state
from .paths import layout as current_layout
from .settings import ADMIN_CLOUD, DEMO_CLOUD, HOST, REGION, Settings, octavia_wanted
from .venv import ensure_venv

Say = Callable[[str], None]

#: RPC workers are ready when they consume their topic's queue.
WORKER_QUEUES = {
    "nova-conductor": "conductor",
    "nova-scheduler": "scheduler",
    "nova-compute": "compute",
    "neutron-rpc-server": "q-plugin",
    "heat-engine": "engine",
    # The amphora provider casts to this topic (octavia.common.constants).
    "octavia-worker": "octavia_provisioning_v2",
}
API_TIMEOUT = 240.0
WORKER_TIMEOUT = 240.0


def bed_lock(layout: Layout) -> Path:
    """One lock per state directory: beds with their own state do not wait
    for each other."""
    return layout.state.with_name(layout.state.name + ".lock")


# -- reading a bed -----------------------------------------------------------

def load_state(layout: Layout) -> tuple[Settings, dict] | None:
    if not layout.state_file.exists():
        return None
    try:
        return Settings.load(layout.state_file)
    except (ValueError, TypeError, KeyError):
        return None


def _handle(settings: Settings, layout: Layout, extra: dict) -> Bed:
    return Bed(state_dir=layout.state, clouds_yaml=layout.clouds_yaml,
               endpoints=settings.endpoints(), log_dir=layout.logs, venv=layout.venv,
               facts=extra.get("facts", {}))


def service_states(settings: Settings, layout: Layout,
                   timeout: float = 5.0) -> dict[str, tuple[int | None, bool]]:
    """Per service: its pid if alive, and whether it answers within
    ``timeout`` (APIs) or is alive (workers)."""
    states = {}
    for service in services.all_services(settings, layout):
        pid = procs.running_pid(layout, service.name)
        healthy = pid is not None and (service.url is None or
                                       procs.answers_http(service.url, timeout))
        states[service.name] = (pid, healthy)
    return states


def running_bed(layout: Layout, octavia: bool | None = None) -> Bed | None:
    """The bed, if every one of its processes is alive and it was built from
    this checkout's venv (and, when ``octavia`` says so, runs Octavia or not).

    Liveness, not a quick HTTP answer, decides: another session's tests may be
    loading a shared bed (an API then takes seconds to answer), and declaring
    it dead would tear it down under them. Keystone must still answer within
    a minute, since everything goes through it.
    """
    loaded = load_state(layout)
    if loaded is None:
        return None
    settings, extra = loaded
    if not extra.get("up") or extra.get("venv") != str(layout.venv):
        return None
    if octavia is not None and settings.octavia != octavia:
        return None
    names = [service.name for service in services.all_services(settings, layout)]
    if any(procs.running_pid(layout, name) is None for name in names):
        return None
    if not procs.answers_http(settings.url("keystone") + "/", timeout=60):
        return None
    return _handle(settings, layout, extra)


# -- up ------------------------------------------------------------------------

class _Clock:
    def __init__(self, say: Say):
        self.started = time.monotonic()
        self.say = say

    def step(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.started:6.1f} s] {text}")


def ensure_up(say: Say = print, octavia: bool | None = None) -> tuple[Bed, bool]:
    """The running bed, or a new one; the flag says whether this call started it.

    ``octavia`` True or False asks for a bed with or without Octavia (one of
    the other kind is replaced); None takes whatever runs, else the
    environment's choice (``FAAFO_OPENSTACK_OCTAVIA``, default with).
    """
    if octavia is None:
        octavia = octavia_wanted()
    layout = current_layout()
    with file_lock(bed_lock(layout)):
        bed = running_bed(layout, octavia)
        if bed is not None:
            return bed, False
        return _up(layout, say, octavia is not False), True


def up(say: Say = print, octavia: bool | None = None) -> Bed:
    return ensure_up(say, octavia)[0]


def _preflight() -> None:
    infra.check_mariadb()
    infra.check_rabbitmq()


def _up(layout: Layout, say: Say, octavia: bool) -> Bed:
    clock = _Clock(say)
    with PeakSampler() as memory:
        _preflight()
        ensure_venv(layout, say=clock.step)
        clock.step(f"virtualenv ready: {layout.venv}")
        settings = _fresh_state(layout, clock, octavia)
        started_services: list[str] = []
        try:
            _bring_up(settings, layout, clock, started_services)
        except BaseException:
            procs.stop_all(layout, reversed(started_services))
            raise
        elapsed = time.monotonic() - clock.started
    facts = {"region": REGION, "image": "Ubuntu QCOW2", "flavors": ["m1.tiny", "m1.small",
             "m1.medium", "m1.large", "m1.xlarge"], "external_network": "public",
             "network": "private", "router": "router1", "octavia": settings.octavia}
    extra = {"up": True, "venv": str(layout.venv), "facts": facts,
             "bring_up_seconds": round(elapsed, 1), "peak_pss_bytes": memory.peak_pss,
             "machine_growth_bytes": memory.machine_growth}
    settings.save(layout.state_file, **extra)
    say(f"OpenStack test bed ({'with' if settings.octavia else 'without'} Octavia) is up "
        f"in {elapsed:.0f} s ({elapsed / 60:.1f} min); peak memory "
        f"{memory.peak_pss / GIB:.2f} GiB (PSS of the bring-up and its services; the "
        f"machine's used memory grew by at most {memory.machine_growth / GIB:.2f} GiB)")
    say(f"clouds.yaml: {layout.clouds_yaml} (clouds {ADMIN_CLOUD}, {DEMO_CLOUD}); "
        f"logs: {layout.logs}")
    return _handle(settings, layout, extra)


def _fresh_state(layout: Layout, clock: _Clock, octavia: bool) -> Settings:
    """Stop whatever is left of an earlier bed and start from an empty state."""
    procs.stop_all(layout, [s.name for s in services.all_services(Settings(), layout)])
    if layout.state.exists():
        for child in layout.state.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    for path in (layout.etc, layout.logs, layout.run, layout.data):
        path.mkdir(parents=True, exist_ok=True)
    layout.state.chmod(0o700)
    settings = Settings.fresh(layout.state, default_state(), octavia=octavia)
    for name in services.api_services(settings, layout):
        if infra.reachable(settings.port(name.name)):
            raise BedError(name.name, f"port {settings.port(name.name)} on {HOST} is already in "
                           "use (set FAAFO_OPENSTACK_PORT_BASE to move the bed)")
    settings.save(layout.state_file, up=False, venv=str(layout.venv))
    with ThreadPoolExecutor(max_workers=2) as pool:
        vhost = pool.submit(infra.create_vhost, settings)
        databases = pool.submit(infra.create_databases, settings)
        vhost.result()
        databases.result()
    clock.step("fresh osbed_* databases in MariaDB and osbed vhost in RabbitMQ")
    render_all(settings, layout)
    write_clouds_yaml(settings, layout)
    for sub in ("keystone", "glance/images", "glance/staging", "glance/tasks", "nova/instances",
                "neutron", "heat", "octavia/locks"):
        (layout.data / sub).mkdir(parents=True, exist_ok=True)
    return settings


def _run_chain(name: str, commands: list[list[str]], layout: Layout) -> None:
    log = layout.logs / f"{name}-setup.log"
    with open(log, "ab") as out:
        for argv in commands:
            out.write(f"$ {' '.join(argv[:1] + [a for a in argv[1:] if 'password' not in a])}\n"
                      .encode())
            out.flush()
            began = time.monotonic()
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=procs.base_env(layout),
                                    cwd=layout.state, check=False, timeout=600)
            out.write(f"# exit {result.returncode} after {time.monotonic() - began:.1f} s\n"
                      .encode())
            if result.returncode != 0:
                raise BedError(name, f"`{Path(argv[0]).name} {' '.join(argv[3:5])}` failed "
                               f"(exit {result.returncode})", log)


def _bring_up(settings: Settings, layout: Layout, clock: _Clock, started: list[str]) -> None:
    chains = services.setup_chains(settings, layout)
    by_name = services.by_name(settings, layout)

    def start(names: list[str]) -> None:
        for name in names:
            procs.start(by_name[name], layout)
            started.append(name)

    with ThreadPoolExecutor(max_workers=3) as pool:
        pending = {name: pool.submit(_run_chain, name, chain, layout)
                   for name, chain in chains.items()}
        pending.pop("keystone").result()
        clock.step("keystone's database, fernet keys and bootstrap done")
        start(["keystone"])
        procs.wait_ready([by_name["keystone"]], layout, API_TIMEOUT)
        clock.step("keystone answers")
        _provision("identity", settings, layout)
        clock.step("service users, catalog, demo project and heat domain created")
        for future in pending.values():
            future.result()
    clock.step("all schemas migrated")

    rest = [name for name in by_name if name != "keystone"]
    start(rest)
    procs.wait_ready([by_name[name] for name in rest if by_name[name].url], layout, API_TIMEOUT)
    clock.step("every API answers")
    _wait_workers(layout, settings.rabbit_vhost, list(by_name))
    clock.step("every RPC worker consumes its queue")
    _provision("resources", settings, layout)
    clock.step("flavors, image 'Ubuntu QCOW2', networks public/private and router1 created"
               + ("; Octavia answers" if settings.octavia else ""))


def _wait_workers(layout: Layout, vhost: str, running: list[str]) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT
    waiting = {name: queue for name, queue in WORKER_QUEUES.items() if name in running}
    while waiting:
        for name in waiting:
            if procs.running_pid(layout, name) is None:
                raise BedError(name, "the process exited during start-up", layout.log(name))
        consumed = infra.queues_with_consumers(vhost)
        waiting = {name: queue for name, queue in waiting.items() if queue not in consumed}
        if not waiting:
            return
        if time.monotonic() > deadline:
            name, queue = next(iter(waiting.items()))
            raise BedError(name, f"nothing consumes its RPC queue {queue!r} after "
                           f"{WORKER_TIMEOUT:.0f} s", layout.log(name))
        time.sleep(2)


def _provision(phase: str, settings: Settings, layout: Layout) -> None:
    payload = {
        "keystone_url": settings.keystone_url, "region": REGION,
        "admin_password": settings.admin_password, "demo_password": settings.demo_password,
        "service_password": settings.service_password, "endpoints": settings.endpoints(),
        "discover_hosts": services.discover_hosts(layout),
    }
    log = layout.logs / "provision.log"
    with open(log, "ab") as out:
        result = subprocess.run(
            [str(layout.python), "-I", str(HERE / "osbed" / "provision.py"), phase],
            input=json.dumps(payload).encode(), stdout=subprocess.PIPE, stderr=out,
            env=procs.base_env(layout), cwd=layout.state, check=False, timeout=900,
        )
        out.write(result.stdout)
    if result.returncode == 0:
        return
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith("OSBED-ERROR "):
            error = json.loads(line.removeprefix("OSBED-ERROR "))
            service = error["service"]
            raise BedError(service, f"provisioning ({phase}): {error['reason']}",
                           layout.log(service))
    raise BedError("provision", f"provisioning ({phase}) failed (exit {result.returncode})", log)
