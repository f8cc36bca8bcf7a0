"""Bearer tokens: clients create and delete, workers deliver results, anyone reads.

With no tokens configured the API is open (the original's behaviour, fine on
a laptop). With ``client_token`` set, creating and deleting need it; with
``worker_token`` set, the worker endpoints need it, so a client cannot forge
results and a worker cannot delete. ``private_reads`` makes reading need the
client token too. Comparisons take constant time; tokens are never logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from faafo.api import deps
from faafo.api.errors import ApiError
from faafo.api.services import Services

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <token>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _matches(given: str, accepted: list[str]) -> bool:
    # Compare against every accepted token without stopping early.
    found = False
    for token in accepted:
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found


def _require(
    credentials: HTTPAuthorizationCredentials | None, accepted: list[str], role: str
) -> None:
    if not accepted:
        return
    if credentials is None:
        raise ApiError(
            401,
            f"this API needs a {role} token (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches(credentials.credentials, accepted):
        raise ApiError(
            403,
            f"the token is not a valid {role} token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def client_access(request: Request, credentials: Credentials) -> None:
    services: Services = deps.services(request)
    _require(credentials, services.settings.client_tokens(), "client")


def worker_access(request: Request, credentials: Credentials) -> None:
    services: Services = deps.services(request)
    _require(credentials, services.settings.worker_tokens(), "worker")


def read_access(request: Request, credentials: Credentials) -> None:
    services: Services = deps.services(request)
    if services.settings.private_reads:
        _require(credentials, services.settings.client_tokens(), "client")


RequireClient = Depends(client_access)
RequireWorker = Depends(worker_access)
RequireReader = Depends(read_access)
