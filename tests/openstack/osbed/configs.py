"""Render the services' config files from ``templates/``.

Placeholders are ``{{name}}`` rather than ``$name`` because oslo.config gives
``$`` its own meaning inside values. Two macros keep the templates short:
``{{authtoken:USER}}`` (a keystonemiddleware section) and ``{{creds:USER}}``
(keystoneauth credentials of a service user). An unknown placeholder is an
error, so a typo never reaches a service as a literal.
"""

from __future__ import annotations

import re
from pathlib import Path

from .paths import TEMPLATES, Layout
from .settings import REGION, Settings

PLACEHOLDER = re.compile(r"\{\{([a-z_]+)(?::([a-z_]+))?\}\}")

#: Which template goes where under ``state/etc``.
FILES = {
    "keystone.conf": "keystone/keystone.conf",
    "placement.conf": "placement/placement.conf",
    "glance-api.conf": "glance/glance-api.conf",
    "nova.conf": "nova/nova.conf",
    "neutron.conf": "neutron/neutron.conf",
    "ml2_conf.ini": "neutron/ml2_conf.ini",
    "heat.conf": "heat/heat.conf",
    "octavia.conf": "octavia/octavia.conf",
}


def _creds(settings: Settings, user: str) -> str:
    return "\n".join([
        "auth_type = password",
        f"auth_url = {settings.keystone_url}",
        "user_domain_name = Default",
        "project_domain_name = Default",
        "project_name = service",
        f"username = {user}",
        f"password = {settings.service_password}",
        f"region_name = {REGION}",
    ])


def _authtoken(settings: Settings, user: str) -> str:
    return "\n".join([
        f"www_authenticate_uri = {settings.keystone_url}",
        # Without memcached each process caches tokens in memory; say so, or
        # keystonemiddleware warns on every start.
        "memcached_servers =",
        # Nova's service tokens must carry the "service" role (see provision).
        "service_token_roles_required = true",
        _creds(settings, user),
    ])


def values(settings: Settings, layout: Layout) -> dict[str, str]:
    found = {
        "state": str(layout.state),
        "venv": str(layout.venv),
        "transport_url": settings.transport_url,
        "service_password": settings.service_password,
        "url_keystone": settings.keystone_url,
        "url_glance": settings.url("glance"),
        "url_heat_cfn": settings.url("heat-api-cfn"),
    }
    for name in ("keystone", "placement", "glance", "nova_api", "nova_cell0", "nova", "neutron",
                 "heat", "octavia"):
        found[f"db_{name}"] = settings.db_url(name)
    return found


def render_text(text: str, settings: Settings, layout: Layout, source: str = "?") -> str:
    known = values(settings, layout)

    def replace(match: re.Match[str]) -> str:
        name, argument = match.group(1), match.group(2)
        if name == "creds" and argument:
            return _creds(settings, argument)
        if name == "authtoken" and argument:
            return _authtoken(settings, argument)
        if argument is None and name in known:
            return known[name]
        raise KeyError(f"{source}: unknown placeholder {match.group(0)}")

    return PLACEHOLDER.sub(replace, text)


def render_all(settings: Settings, layout: Layout) -> dict[str, Path]:
    """Write every config file; returns them by template name."""
    written: dict[str, Path] = {}
    for template, target in FILES.items():
        path = layout.etc / target
        path.parent.mkdir(parents=True, exist_ok=True)
        text = render_text((TEMPLATES / template).read_text(), settings, layout, template)
        path.write_text(text)
        path.chmod(0o600)
        written[template] = path
    return written
