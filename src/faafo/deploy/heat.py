"""``faafo deploy up --heat``: the HOT templates of deploy/heat/ through openstacksdk.

The seed fell back to the ``openstack`` CLI because libcloud cannot drive
Heat; openstacksdk can, and its template utilities resolve ``get_file`` so the
templates embed deploy/install.sh itself rather than a copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openstack.orchestration.util import template_utils

from faafo.deploy.errors import DeployError
from faafo.deploy.state import State
from faafo.deploy.userdata import install_script_path
from openstack import exceptions as sdk_exc

FAILED = ["CREATE_FAILED", "UPDATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED"]


def template_path(topology: str) -> Path:
    """deploy/heat/TOPOLOGY.yaml, beside install.sh (which the templates ``get_file``)."""
    path = install_script_path().parent / "heat" / f"{topology}.yaml"
    if not path.is_file():
        raise DeployError(f"Heat template {path.name} not found")
    return path


def parameters(state: State, key_name: str) -> dict[str, Any]:
    """The templates' parameters from the deployment's settings."""
    params: dict[str, Any] = {
        "image": state.image,
        "flavor": state.flavor,
        "key_name": key_name,
        "network": state.network,
        "pip_source": state.pip_source,
    }
    if state.topology != "aio":
        params["worker_count"] = state.workers
    if state.external_network:
        params["external_network"] = state.external_network
    return params


def up(conn: Any, state: State, key_name: str, wait: float = 900.0, say: Any = print) -> Any:
    """Create the stack, or update it when its worker count changed; wait for it."""
    files, template = template_utils.get_template_contents(
        template_file=str(template_path(state.topology))
    )
    params = parameters(state, key_name)
    stack = conn.orchestration.find_stack(state.name)
    try:
        if stack is None:
            say(f"creating stack {state.name}")
            stack = conn.orchestration.create_stack(
                name=state.name, template=template, files=files, parameters=params
            )
            target = "CREATE_COMPLETE"
        elif str(stack.parameters.get("worker_count", "")) not in ("", str(state.workers)):
            say(f"updating stack {state.name}: {state.workers} workers")
            conn.orchestration.update_stack(
                stack, template=template, files=files, parameters=params
            )
            target = "UPDATE_COMPLETE"
        else:
            target = stack.status if stack.status.endswith("_COMPLETE") else "CREATE_COMPLETE"
    except sdk_exc.BadRequestException as error:
        raise DeployError(f"Heat refused the stack: {error.details or error}") from error
    say(f"waiting for stack {state.name} ({target})")
    try:
        stack = conn.orchestration.wait_for_status(
            stack, target, failures=FAILED, interval=2, wait=wait
        )
    except sdk_exc.ResourceFailure as error:
        stack = conn.orchestration.get_stack(stack.id)
        raise DeployError(f"stack {state.name}: {stack.status}: {stack.status_reason}") from error
    return conn.orchestration.get_stack(stack.id)


def outputs(stack: Any) -> dict[str, Any]:
    """A stack's outputs by key."""
    return {o["output_key"]: o.get("output_value") for o in stack.outputs or []}


def down(conn: Any, name: str, wait: float = 600.0) -> bool:
    """Delete the stack named ``name``; False when there was none."""
    stack = conn.orchestration.find_stack(name)
    if stack is None:
        return False
    conn.orchestration.delete_stack(stack)
    conn.orchestration.wait_for_delete(stack, interval=2, wait=wait)
    return True
