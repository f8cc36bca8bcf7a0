"""The worker-facing API: claim tasks, renew leases, deliver results, report failures.

Workers never hold database credentials (the seed's scaled topology admits
only API hosts to the database); everything they change goes through here.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile

from faafo.api import deps
from faafo.api.auth import RequireWorker
from faafo.api.errors import ApiError, clean_errors, describe_validation
from faafo.api.results import accept_results
from faafo.api.schemas import ClaimOut, ClaimRequest, FailureReport, ResultMeta
from faafo.api.services import Services
from faafo.store import fractals as store

router = APIRouter(prefix="/v1/worker", tags=["worker"], dependencies=[RequireWorker])
Svc = Annotated[Services, Depends(deps.services)]
_metas = TypeAdapter(list[ResultMeta])


@router.post("/claim", response_model=list[ClaimOut])
def claim(body: ClaimRequest, services: Svc) -> list[ClaimOut]:
    """Mark the tasks of one message running; answer which still need rendering."""
    now = store.utcnow()
    with services.database.session() as session:
        claims = store.claim(
            session, body.uuids, body.worker, now, services.lease, services.settings.max_attempts
        )
    seconds = services.settings.lease_seconds
    return [
        ClaimOut(uuid=c.uuid, render=c.render, reason=c.reason, attempt=c.attempt, lease_seconds=seconds)
        for c in claims
    ]


@router.post("/heartbeat")
def heartbeat(body: ClaimRequest, services: Svc) -> dict[str, int]:
    """Extend the leases of tasks still being rendered (long renders)."""
    until = store.utcnow() + services.lease
    with services.database.session() as session:
        renewed = store.renew_leases(session, body.uuids, body.worker, until)
    return {"renewed": renewed}


@router.post("/failures")
def report_failures(body: list[FailureReport], services: Svc) -> dict[str, int]:
    """Tasks that can never render (bad parameters, engine error): failed, with the reason."""
    now = store.utcnow()
    failed = 0
    with services.database.session() as session:
        for report in body:
            who = f" (worker {report.worker})" if report.worker else ""
            failed += store.fail(session, [report.uuid], report.error + who, now)
    return {"failed": failed}


@router.post(
    "/results",
    summary="Deliver results: multipart with a JSON 'meta' part and one PNG part per uuid",
)
async def upload_results(request: Request, services: Svc) -> dict[str, str]:
    declared = int(request.headers.get("content-length") or 0)
    if declared > services.settings.max_upload_bytes:
        raise ApiError(413, f"upload of {declared} bytes exceeds the limit")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "expected multipart/form-data")
    form = await request.form(max_files=10_000, max_fields=10_000)
    try:
        raw_meta = form.get("meta")
        if not isinstance(raw_meta, str):
            raise ApiError(422, "meta: a JSON part is required")
        metas = _metas.validate_python(json.loads(raw_meta))
    except ValidationError as error:
        raise ApiError(422, "meta: " + describe_validation(clean_errors(error.errors()))) from None
    except ValueError:
        raise ApiError(422, "meta: not valid JSON") from None
    items = []
    for meta in metas:
        image = form.get(meta.uuid)
        if not isinstance(image, UploadFile):
            raise ApiError(422, f"no image part for {meta.uuid}")
        thumb = form.get(f"thumbnail:{meta.uuid}")
        thumbnail = await thumb.read() if isinstance(thumb, UploadFile) else None
        items.append((meta, await image.read(), thumbnail))
    await form.close()
    return await accept_results(services, items)
