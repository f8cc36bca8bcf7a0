"""What runs in the bed: the API services under uwsgi and the RPC workers, and
the one-shot commands that prepare their databases.

uwsgi serves with ``--http11-socket``: its plain ``--http-socket`` closes each
connection after one response without saying so, and clients that keep
connections alive (keystoneauth, openstacksdk) then meet resets.
"""

from __future__ import annotations

import grp
import os
import pwd

from .paths import HERE, Layout
from .procs import Service
from .settings import HOST, REGION, Settings

#: API services: (name, uwsgi module, number of uwsgi worker processes).
_APIS = (
    ("keystone", "keystone.wsgi.api:application", 2),
    ("placement", "placement.wsgi.api:application", 1),
    ("glance", "glance.wsgi.api:application", 1),
    ("nova-api", "nova.wsgi.osapi_compute:application", 1),
    # Everyone calls neutron (nova for ports, heat, the tests): two workers.
    ("neutron-api", "neutron.wsgi.api:application", 2),
    ("heat-api", "heat.wsgi.api:application", 1),
    ("heat-api-cfn", "heat.wsgi.cfn:application", 1),
    ("octavia-api", "octavia.wsgi.api:application", 1),
)
#: Services that only a bed with Octavia runs.
OCTAVIA_SERVICES = ("octavia-api", "octavia-worker")


def _api_env(name: str, layout: Layout) -> dict[str, str]:
    etc = layout.etc
    # nova takes its paste config as the first of its files; the wheel ships it.
    nova_files = f"{layout.venv_etc / 'nova' / 'api-paste.ini'};nova.conf"
    return {
        "keystone": {"OS_KEYSTONE_CONFIG_DIR": str(etc / "keystone")},
        "placement": {"OS_PLACEMENT_CONFIG_DIR": str(etc / "placement")},
        "glance": {"OS_GLANCE_CONFIG_DIR": str(etc / "glance")},
        "nova-api": {"OS_NOVA_CONFIG_DIR": str(etc / "nova"), "OS_NOVA_CONFIG_FILES": nova_files},
        "neutron-api": {"OS_NEUTRON_CONFIG_DIR": str(etc / "neutron"),
                        "OS_NEUTRON_CONFIG_FILES": "neutron.conf;ml2_conf.ini"},
    }.get(name, {})


def _uwsgi(name: str, module: str, processes: int, settings: Settings, layout: Layout) -> Service:
    argv = [
        str(layout.bin / "uwsgi"),
        "--master", "--die-on-term", "--need-app", "--lazy-apps", "--enable-threads",
        "--virtualenv", str(layout.venv),
        "--http11-socket", f"{HOST}:{settings.port(name)}",
        "--processes", str(processes), "--threads", "4",
        "--module", module,
        "--buffer-size", "65535",
        "--procname-prefix-spaced", f"osbed-{name}",
        "--worker-reload-mercy", "5",
        "--disable-logging",
    ]
    if name.startswith(("heat", "octavia")):
        # heat and octavia parse sys.argv for their config (no config-dir variable).
        project = name.split("-")[0]
        argv += ["--pyargv", f"--config-file {layout.etc / project / f'{project}.conf'}"]
    return Service(name, argv, env=_api_env(name, layout), url=settings.url(name) + "/")


def _worker(name: str, program: str, configs: list[str], layout: Layout) -> Service:
    argv = [str(layout.bin / program)]
    for config in configs:
        argv += ["--config-file", str(layout.etc / config)]
    return Service(name, argv)


def _wanted(name: str, settings: Settings) -> bool:
    return settings.octavia or name not in OCTAVIA_SERVICES


def api_services(settings: Settings, layout: Layout) -> list[Service]:
    return [_uwsgi(name, module, processes, settings, layout)
            for name, module, processes in _APIS if _wanted(name, settings)]


def worker_services(settings: Settings, layout: Layout) -> list[Service]:
    nova = ["nova/nova.conf"]
    workers = [
        _worker("nova-conductor", "nova-conductor", nova, layout),
        _worker("nova-scheduler", "nova-scheduler", nova, layout),
        _worker("nova-compute", "nova-compute", nova, layout),
        _worker("neutron-rpc-server", "neutron-rpc-server",
                ["neutron/neutron.conf", "neutron/ml2_conf.ini"], layout),
        _worker("heat-engine", "heat-engine", ["heat/heat.conf"], layout),
        # Octavia's controller worker: the amphora provider's RPC server, which
        # runs the taskflow flows (with no-op amphora, compute and image drivers).
        _worker("octavia-worker", "octavia-worker", ["octavia/octavia.conf"], layout),
    ]
    return [worker for worker in workers if _wanted(worker.name, settings)]


def all_services(settings: Settings, layout: Layout) -> list[Service]:
    return api_services(settings, layout) + worker_services(settings, layout)


def by_name(settings: Settings, layout: Layout) -> dict[str, Service]:
    return {service.name: service for service in all_services(settings, layout)}


# -- one-shot preparation, one chain per service (they run in parallel) ------

def setup_chains(settings: Settings, layout: Layout) -> dict[str, list[list[str]]]:
    """Database schemas and keys, by the service whose log shows a failure."""
    b, etc = layout.bin, layout.etc
    keystone = ["--config-file", str(etc / "keystone" / "keystone.conf")]
    nova = ["--config-file", str(etc / "nova" / "nova.conf")]
    neutron = ["--config-file", str(etc / "neutron" / "neutron.conf"),
               "--config-file", str(etc / "neutron" / "ml2_conf.ini")]
    # keystone-manage chowns its key repositories to these: whoever runs us.
    owner = ["--keystone-user", pwd.getpwuid(os.getuid()).pw_name,
             "--keystone-group", grp.getgrgid(os.getgid()).gr_name]
    chains = {
        "keystone": [
            [str(b / "keystone-manage"), *keystone, "db_sync"],
            [str(b / "keystone-manage"), *keystone, "fernet_setup", *owner],
            [str(b / "keystone-manage"), *keystone, "credential_setup", *owner],
            [str(b / "keystone-manage"), *keystone, "bootstrap",
             "--bootstrap-password", settings.admin_password,
             # The catalog holds keystone unversioned, as clients and heat's
             # ec2token (which appends /v3/ec2tokens) expect.
             "--bootstrap-admin-url", settings.url("keystone"),
             "--bootstrap-internal-url", settings.url("keystone"),
             "--bootstrap-public-url", settings.url("keystone"),
             "--bootstrap-region-id", REGION],
        ],
        "placement": [
            [str(b / "placement-manage"), "--config-file",
             str(etc / "placement" / "placement.conf"), "db", "sync"],
        ],
        "glance": [
            [str(b / "glance-manage"), "--config-file", str(etc / "glance" / "glance-api.conf"),
             "db_sync"],
        ],
        "nova-api": [
            [str(b / "nova-manage"), *nova, "api_db", "sync"],
            [str(b / "nova-manage"), *nova, "cell_v2", "map_cell0", "--database_connection",
             settings.db_url("nova_cell0")],
            [str(b / "nova-manage"), *nova, "cell_v2", "create_cell", "--name", "cell1"],
            [str(b / "nova-manage"), *nova, "db", "sync"],
        ],
        "neutron-api": [
            [str(b / "neutron-db-manage"), *neutron, "upgrade", "heads"],
        ],
        "heat-api": [
            [str(b / "heat-manage"), "--config-file", str(etc / "heat" / "heat.conf"), "db_sync"],
        ],
    }
    if settings.octavia:
        chains["octavia-api"] = [
            [str(b / "octavia-db-manage"), "--config-file", str(etc / "octavia" / "octavia.conf"),
             "upgrade", "head"],
            # The CA the flows sign each (no-op) amphora's certificate with.
            [str(layout.python), "-I", str(HERE / "osbed" / "octavia_ca.py"),
             str(layout.data / "octavia")],
        ]
    return chains


def discover_hosts(layout: Layout) -> list[str]:
    return [str(layout.bin / "nova-manage"), "--config-file",
            str(layout.etc / "nova" / "nova.conf"), "cell_v2", "discover_hosts"]
