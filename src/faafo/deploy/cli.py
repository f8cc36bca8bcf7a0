"""``faafo deploy up|status|down``: the command line over converge and heat.

Flags left out on a later ``up`` come from the deployment's state file, so
``faafo deploy up --workers 5`` changes only the worker count. Every user error
ends as one ``faafo: error:`` line and exit status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "topology": "aio",
    "apis": 2,
    "workers": 1,
    "image": "Ubuntu QCOW2",
    "flavor": "m1.small",
    "network": "private",
    "external_network": None,
    "key_file": None,
    "pip_source": "faafo",
    "lb": "auto",
}


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``deploy`` and its three sub-commands."""
    deploy = commands.add_parser(
        "deploy",
        help="deploy faafo to OpenStack",
        description="Deploy faafo to OpenStack: aio, split or scaled, directly or with Heat.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--os-cloud", help="the clouds.yaml entry (env OS_CLOUD)")
    common.add_argument("--name", default="faafo", help="prefix of every resource (default faafo)")
    common.add_argument("--heat", action="store_true", help="use the Heat template (a stack)")
    sub = deploy.add_subparsers(dest="deploy_command", required=True)
    up = sub.add_parser("up", parents=[common], help="create or converge a deployment")
    up.add_argument("--topology", choices=("aio", "split", "scaled"))
    up.add_argument("--apis", type=int, help="scaled: API servers (default 2)")
    up.add_argument("--workers", type=int, help="worker servers (default 1)")
    up.add_argument("--image", help="image name (default 'Ubuntu QCOW2')")
    up.add_argument("--flavor", help="flavor name (default m1.small)")
    up.add_argument("--key-file", help="SSH public key to import as PREFIX-key")
    up.add_argument("--network", help="private network (default private)")
    up.add_argument("--external-network", help="floating IP pool (default: the first external)")
    up.add_argument("--pip-source", help="what the servers pip install (default faafo)")
    up.add_argument(
        "--lb",
        choices=("auto", "octavia", "haproxy"),
        help="scaled: the load balancer: Octavia, an HAProxy server, or auto (default: "
        "Octavia when the cloud has a load-balancer service)",
    )
    up.add_argument("--timeout", type=float, default=900.0, help="seconds to wait (default 900)")
    sub.add_parser("status", parents=[common], help="servers, roles, addresses, app URL")
    sub.add_parser("down", parents=[common], help="delete everything the deployment created")
    deploy.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Dispatch, turning user errors into one line."""
    import requests
    from keystoneauth1 import exceptions as ks_exc
    from rich.console import Console

    import openstack
    from faafo.deploy.errors import DeployError
    from openstack import exceptions as sdk_exc

    console = Console(stderr=True, log_path=False)
    args.os_cloud = args.os_cloud or os.environ.get("OS_CLOUD")  # one state file either way
    try:
        conn = openstack.connect(cloud=args.os_cloud)
        conn.authorize()
        command = {"up": _up, "status": _status, "down": _down}[args.deploy_command]
        return command(conn, args, console)
    except DeployError as error:
        print(f"faafo: error: {error}", file=sys.stderr)
    except sdk_exc.ResourceTimeout as error:
        print(f"faafo: error: timed out: {error}", file=sys.stderr)
    except (sdk_exc.SDKException, ks_exc.ClientException, requests.RequestException) as error:
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"faafo: error: {line}", file=sys.stderr)
    return 1


def _state(args: argparse.Namespace) -> Any:
    from faafo.deploy.state import State, load

    state = load(args.name, args.os_cloud) or State(name=args.name, cloud=args.os_cloud)
    fresh = not state.path.exists()
    for key, default in DEFAULTS.items():
        value = getattr(args, key, None)
        if value is not None:
            setattr(state, key, value)
        elif fresh:
            setattr(state, key, default)
    if state.key_file is None:
        for candidate in ("id_ed25519.pub", "id_rsa.pub"):
            path = Path.home() / ".ssh" / candidate
            if path.is_file():
                state.key_file = str(path)
                break
    return state


def _up(conn: Any, args: argparse.Namespace, console: Any) -> int:
    from faafo.deploy import heat
    from faafo.deploy.converge import Deployment
    from faafo.deploy.errors import DeployError
    from faafo.deploy.state import load

    old = load(args.name, args.os_cloud)
    if old is not None and args.topology and old.topology != args.topology:
        raise DeployError(
            f"deployment {args.name!r} is {old.topology}: run down first or choose another --name"
        )
    state = _state(args)
    state.heat = args.heat or (old is not None and old.heat)
    if state.heat and state.lb == "octavia":  # the flag, or what an earlier up saved
        raise DeployError(
            "--heat builds the templates' HAProxy server: drop --lb octavia"
            + ("" if args.lb else f" (deployment {state.name!r} has it: pass --lb haproxy)")
        )
    state.save()  # before creating anything: an interrupted up keeps its secrets
    deployment = Deployment(conn, state)
    with console.status(f"faafo deploy up {state.name} ({state.topology})") as status:

        def say(message: str) -> None:
            status.update(message)
            console.log(message)

        deployment.say = say
        if state.heat:
            found = deployment.preflight()
            key = deployment.keypair(found["key"])
            if key is None:
                raise DeployError("--heat needs --key-file (the templates take a key pair)")
            stack = heat.up(conn, state, key, wait=args.timeout, say=say)
            outputs = heat.outputs(stack)
            for name in sorted(outputs):
                print(f"{name}: {outputs[name]}")
            return 0
        changes = deployment.up(wait=args.timeout)
    console.log(f"created {len(changes.created)}, deleted {len(changes.deleted)}")
    return _status(conn, args, console)


def _status(conn: Any, args: argparse.Namespace, console: Any) -> int:
    from rich.console import Console
    from rich.table import Table

    from faafo.deploy import heat
    from faafo.deploy.converge import Deployment
    from faafo.deploy.state import State, load

    state = load(args.name, args.os_cloud) or State(name=args.name, cloud=args.os_cloud)
    if args.heat or state.heat:
        stack = conn.orchestration.find_stack(args.name)
        if stack is None:
            print(f"no stack {args.name}")
            return 1
        stack = conn.orchestration.get_stack(stack.id)
        print(f"stack {stack.name}: {stack.status}")
        for key, value in sorted(heat.outputs(stack).items()):
            print(f"{key}: {value}")
        return 0
    rows, url = Deployment(conn, state).status()
    table = Table(title=f"faafo deployment {state.name}")
    for column in ("server", "roles", "addresses", "state"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["server"], row["roles"], row["addresses"], row["state"])
    out = Console(width=200)
    out.print(table)
    if state.topology == "scaled":
        out.print(f"load balancer: {Deployment(conn, state).lb_kind()} (--lb {state.lb})")
    out.print(f"app URL: {url or '-'}")
    return 0


def _down(conn: Any, args: argparse.Namespace, console: Any) -> int:
    from faafo.deploy import heat
    from faafo.deploy.converge import Deployment
    from faafo.deploy.state import State, load

    state = load(args.name, args.os_cloud) or State(name=args.name, cloud=args.os_cloud)
    deployment = Deployment(conn, state, console.log)
    with console.status(f"faafo deploy down {state.name}"):
        if args.heat or state.heat:
            heat.down(conn, state.name)
        changes = deployment.down()
    state.remove()
    console.log(f"deleted {len(changes.deleted)} resources")
    return 0
