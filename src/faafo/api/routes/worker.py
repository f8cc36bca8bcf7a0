"""The worker-facing API: claim tasks, renew leases, deliver results, report failures.

Workers never hold database credentials (the seed's scaled topology admits
only API hosts to the database); everything they change goes through here.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from faafo import logs
from faafo.api import deps
from faafo.api.auth import RequireWorker
from faafo.api.body import parse_json, read_limited
from faafo.api.deps import FractalUuid
from faafo.api.errors import ApiError, clean_errors, describe_validation
from faafo.api.results import accept_results, verify
from faafo.api.schemas import ClaimOut, ClaimRequest, FailureReport, ResultMeta
from faafo.api.services import Services
from faafo.store import bands
from faafo.store import fractals as store

router = APIRouter(prefix="/v1/worker", tags=["worker"], dependencies=[RequireWorker])
Svc = Annotated[Services, Depends(deps.services)]
_metas = TypeAdapter(list[ResultMeta])
log = logging.getLogger(__name__)


@router.post("/claim", response_model=list[ClaimOut])
def claim(body: ClaimRequest, services: Svc) -> list[ClaimOut]:
    """Mark the tasks of one message running; answer which still need rendering."""
    now = store.utcnow()
    with services.database.session() as session:
        claims = store.claim(
            session, body.uuids, body.worker, now, services.lease, services.settings.max_attempts
        )
    seconds = services.settings.lease_seconds
    for c in claims:
        with logs.task_context(c.uuid):
            if c.render:
                log.info("claimed by %s (attempt %d)", body.worker, c.attempt)
            else:
                log.info("not claimed by %s: %s", body.worker, c.reason)
        if services.metrics:
            if c.render and c.attempt > 1:
                services.metrics.redeliveries.inc()
            if c.reason == "too many attempts":
                services.metrics.failed.labels("attempts").inc()
    return [
        ClaimOut(
            uuid=c.uuid, render=c.render, reason=c.reason, attempt=c.attempt, lease_seconds=seconds
        )
        for c in claims
    ]


@router.post("/heartbeat")
def heartbeat(body: ClaimRequest, services: Svc) -> dict[str, int]:
    """Extend the leases of tasks still being rendered (long renders)."""
    until = store.utcnow() + services.lease
    with services.database.session() as session:
        renewed = store.renew_leases(session, body.uuids, body.worker, until)
    return {"renewed": renewed}


@router.post("/release")
def release(body: ClaimRequest, services: Svc) -> dict[str, int]:
    """A worker gives back tasks it will not finish (stopping): queued, attempt not counted."""
    with services.database.session() as session:
        released = store.release(session, body.uuids, body.worker)
    for uuid in body.uuids:
        with logs.task_context(uuid):
            log.info("given back by %s", body.worker)
    return {"released": released}


@router.post("/failures")
def report_failures(body: list[FailureReport], services: Svc) -> dict[str, int]:
    """Tasks that can never render (bad parameters, engine error): failed, with the reason."""
    now = store.utcnow()
    failed = 0
    with services.database.session() as session:
        for report in body:
            who = f" (worker {report.worker})" if report.worker else ""
            changed = store.fail(session, [report.uuid], report.error + who, now)
            failed += changed
            with logs.task_context(report.uuid):
                log.warning("failed: %s%s", report.error, who)
            if changed and services.metrics:
                reason = "poison" if report.error.startswith("unusable task") else "render"
                services.metrics.failed.labels(reason).inc()
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
    raw_meta = form.get("meta")
    if not isinstance(raw_meta, str):
        raise ApiError(422, "meta: a JSON part is required")
    payload = parse_json(raw_meta, what="meta")  # 400 when malformed or nested too deeply
    try:
        metas = _metas.validate_python(payload)
    except ValidationError as error:
        raise ApiError(422, "meta: " + describe_validation(clean_errors(error.errors()))) from None
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


class BandClaim(BaseModel):
    worker: str = Field(..., min_length=1, max_length=255)
    uuid: str = Field(..., max_length=36)
    band: int = Field(..., ge=0, le=10**6)


@router.post("/bands/claim", response_model=ClaimOut)
def claim_band(body: BandClaim, services: Svc) -> ClaimOut:
    """Claim one band of a huge task: does it still need rendering?"""
    with services.database.session() as session:
        claim = bands.claim_band(
            session,
            body.uuid,
            body.band,
            body.worker,
            store.utcnow(),
            services.lease,
            services.settings.max_attempts,
        )
    return ClaimOut(
        uuid=claim.uuid,
        render=claim.render,
        reason=claim.reason,
        attempt=claim.attempt,
        lease_seconds=services.settings.lease_seconds,
    )


@router.put(
    "/bands/{uuid}/{band}",
    summary="Deliver one rendered band (raw PNG)",
    openapi_extra={
        "requestBody": {
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}
        }
    },
)
async def put_band(
    uuid: FractalUuid,
    band: Annotated[int, Path(ge=0, le=10**6)],
    request: Request,
    services: Svc,
    checksum: Annotated[str, Query(min_length=64, max_length=64)],
    duration: Annotated[float, Query(ge=0, allow_inf_nan=False)],
    generated_by: Annotated[str, Query(min_length=1, max_length=255)],
) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "image/png":
        raise ApiError(415, "expected Content-Type: image/png")
    png = await read_limited(request, services.settings.max_upload_bytes)

    def _size() -> tuple[int, int] | None:
        with services.database.reading() as session:
            return bands.band_size(session, uuid, band)

    verify(
        ResultMeta(uuid=uuid, checksum=checksum, duration=duration, generated_by=generated_by),
        png,
        await run_in_threadpool(_size),
    )

    def _store() -> tuple[str, bool]:
        with services.database.session() as session:
            return bands.store_band(session, uuid, band, png, duration, generated_by)

    outcome, complete = await run_in_threadpool(_store)
    if outcome == "unknown":
        raise ApiError(404, f"no band {band} of fractal {uuid}")
    if complete:
        await run_in_threadpool(services.publish_assembly, uuid)
    return {"uuid": uuid, "band": str(band), "result": outcome}


@router.get(
    "/bands/{uuid}/{band}", response_class=Response, responses={200: {"content": {"image/png": {}}}}
)
def get_band(
    uuid: FractalUuid, band: Annotated[int, Path(ge=0, le=10**6)], services: Svc
) -> Response:
    """A stored band, for the worker that assembles the final image."""
    with services.database.reading() as session:
        data = bands.band_png(session, uuid, band)
    if data is None:
        raise ApiError(404, f"no stored band {band} of fractal {uuid}")
    return Response(data, media_type="image/png")
