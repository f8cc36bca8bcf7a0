"""``down`` and ``status``: stopping a bed and reporting on it."""

from __future__ import annotations

from . import infra, procs, services
from .errors import BedError
from .lifecycle import Say, bed_lock, load_state, service_states
from .locking import file_lock
from .memory import GIB
from .paths import layout as current_layout
from .settings import ADMIN_CLOUD, DEMO_CLOUD, Settings


def down(say: Say = print) -> None:
    """Stop every process of the bed, drop its databases and vhost. Logs and
    configs stay in the state directory for a post-mortem."""
    layout = current_layout()
    with file_lock(bed_lock(layout)):
        loaded = load_state(layout)
        settings = loaded[0] if loaded else Settings()
        names = [s.name for s in services.all_services(settings, layout)]
        procs.stop_all(layout, reversed(names))
        say("stopped the bed's processes")
        if loaded is None:
            say("no state file: nothing else to clean")
            return
        try:
            infra.drop_databases(settings)
            infra.delete_vhost(settings)
            say("dropped the osbed_* databases and the osbed vhost")
        except BedError as error:
            say(f"could not clean the servers: {error}")
        settings.save(layout.state_file, **{**loaded[1], "up": False})
        say(f"logs kept in {layout.logs}")


def status(say: Say = print) -> int:
    """Print each service's state; exit code 0 when the bed is up and healthy."""
    layout = current_layout()
    loaded = load_state(layout)
    if loaded is None:
        say(f"no bed in {layout.state}")
        return 1
    settings, extra = loaded
    states = service_states(settings, layout)
    known = services.by_name(settings, layout)
    for name, (pid, healthy) in states.items():
        where = known[name].url or ""
        state = "up" if healthy else "SLOW" if pid else "DOWN"
        say(f"{name:20} {state:5} pid {pid or '-':<8} {where}")
    healthy = extra.get("up") and all(pid for pid, _ in states.values())
    if healthy and not all(ok for _, ok in states.values()):
        say("(SLOW: alive but not answering within 5 s, e.g. under load)")
    say(f"octavia: {'yes' if settings.octavia else 'no (brought up without it)'}")
    say(f"state: {layout.state}\nclouds.yaml: {layout.clouds_yaml} "
        f"({ADMIN_CLOUD}, {DEMO_CLOUD})\nvenv: {extra.get('venv')}")
    if extra.get("bring_up_seconds"):
        say(f"last bring-up: {extra['bring_up_seconds']} s, peak "
            f"{extra['peak_pss_bytes'] / GIB:.2f} GiB")
    say("bed is UP" if healthy else "bed is NOT up")
    return 0 if healthy else 1
