"""The bed's ``clouds.yaml``: the one file a client needs (openstacksdk, the
openstack CLI, ``faafo deploy --os-cloud``). Written by hand rather than with
a YAML library, since bring-up uses only the standard library."""

from __future__ import annotations

from .paths import Layout
from .settings import ADMIN_CLOUD, DEMO_CLOUD, REGION, Settings


def write_clouds_yaml(settings: Settings, layout: Layout) -> None:
    def cloud(name: str, user: str, project: str, password: str) -> str:
        return (f"  {name}:\n"
                f"    auth:\n"
                f"      auth_url: {settings.keystone_url}\n"
                f"      username: {user}\n"
                f"      password: {password}\n"
                f"      project_name: {project}\n"
                f"      user_domain_name: Default\n"
                f"      project_domain_name: Default\n"
                f"    region_name: {REGION}\n"
                f"    interface: public\n"
                f"    identity_api_version: 3\n")

    text = ("# The faafo OpenStack test bed's clouds (written by tests/openstack/bed.py up).\n"
            "clouds:\n"
            + cloud(ADMIN_CLOUD, "admin", "admin", settings.admin_password)
            + cloud(DEMO_CLOUD, "demo", "demo", settings.demo_password))
    layout.clouds_yaml.write_text(text)
    layout.clouds_yaml.chmod(0o600)
