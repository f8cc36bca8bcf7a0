"""Request-scoped access to the per-process services built by the app factory."""

from __future__ import annotations

from fastapi import Request

from faafo.api.services import Services


def services(request: Request) -> Services:
    return request.app.state.services
