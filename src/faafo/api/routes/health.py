"""Liveness and readiness, for load balancers and process supervisors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from faafo.api import deps
from faafo.api.services import Services

router = APIRouter(tags=["health"])
Svc = Annotated[Services, Depends(deps.services)]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers: nothing else is checked."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: Svc) -> JSONResponse:
    """Database and queue reachable: 200; otherwise 503 naming what is down."""
    checks: dict[str, str] = {}
    for name, probe in (("database", services.database.ping), ("queue", services.publisher.ping)):
        try:
            await run_in_threadpool(probe)
            checks[name] = "ok"
        except Exception as error:
            checks[name] = f"unavailable: {error.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )
