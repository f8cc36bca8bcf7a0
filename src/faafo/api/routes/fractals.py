"""The v1 REST API of the original (same paths, fields and envelope), plus batches."""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import TypeAdapter, ValidationError

from faafo.api import deps
from faafo.api.auth import RequireClient, RequireReader, RequireWorker
from faafo.api.body import read_json, read_limited
from faafo.api.deps import FractalUuid
from faafo.api.errors import ApiError, clean_errors, describe_validation
from faafo.api.schemas import (
    BatchCreated,
    BatchStatus,
    FractalOut,
    FractalPage,
    ResultMeta,
    TaskCreate,
)
from faafo.api.services import Services
from faafo.store import fractals as store
from faafo.store import idempotency
from faafo.store.models import DONE, STATUSES

router = APIRouter()
Svc = Annotated[Services, Depends(deps.services)]

_task = TypeAdapter(TaskCreate)
_create_schema = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/TaskCreate"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/TaskCreate"}},
                    ]
                }
            }
        },
    }
}


def _validate_tasks(payload: Any) -> tuple[list[dict], bool]:
    many = isinstance(payload, list)
    items = payload if many else [payload]
    if many and not items:
        raise ApiError(422, "no tasks given")
    tasks = []
    for index, item in enumerate(items):
        try:
            tasks.append(_task.validate_python(item).model_dump())
        except ValidationError as error:
            errors = clean_errors(error.errors(include_url=False))
            prefix = f"task {index}: " if many else ""
            raise ApiError(422, prefix + describe_validation(errors)) from None
    return tasks, many


@router.post(
    "/v1/fractal",
    status_code=201,
    response_model=FractalOut | BatchCreated,
    openapi_extra=_create_schema,
    summary="Create one task (an object) or many (an array)",
    dependencies=[RequireClient],
    responses={
        409: {"description": "uuid exists (and the request is no retry: Idempotency-Key)"},
        415: {},
        422: {},
    },
)
async def create_fractals(
    request: Request,
    services: Svc,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=idempotency.MAX_KEY_LENGTH,
            description="any unique string, e.g. a random UUID; a retry with the same key "
            "and body gets the original answer instead of 409",
        ),
    ] = None,
) -> JSONResponse:
    payload = await read_json(
        request,
        services.settings.max_request_bytes,
        max_items=services.settings.max_tasks_per_request,
    )
    tasks, many = _validate_tasks(payload)
    from starlette.concurrency import run_in_threadpool

    replayable = idempotency.Request.of(idempotency_key, payload) if idempotency_key else None
    rows = await run_in_threadpool(services.create, tasks, replayable)
    if many:
        body = BatchCreated(num_results=len(rows), objects=[FractalOut.of(r) for r in rows])
        return JSONResponse(body.model_dump(mode="json"), status_code=201)
    record = FractalOut.of(rows[0])
    return JSONResponse(
        record.model_dump(mode="json"),
        status_code=201,
        headers={"Location": str(request.url_for("get_fractal", uuid=record.uuid))},
    )


@router.get(
    "/v1/fractal",
    response_model=FractalPage,
    summary="List fractals, a page at a time",
    dependencies=[RequireReader],
)
def list_fractals(
    request: Request,
    response: Response,
    services: Svc,
    page: Annotated[int, Query(ge=1, le=10**9)] = 1,
    results_per_page: Annotated[int, Query(ge=1, le=100)] = 10,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")] = None,
    batch: Annotated[str | None, Query(max_length=36)] = None,
    generated_by: Annotated[str | None, Query(max_length=255)] = None,
) -> FractalPage:
    filters = store.Filters(status=status, batch=batch, generated_by=generated_by)
    with services.database.reading() as session:
        total = store.count(session, filters)
        rows = store.page(session, filters, page, results_per_page)
        objects = [FractalOut.of(r) for r in rows]
    total_pages = max(1, math.ceil(total / results_per_page))
    links = []
    if page < total_pages:
        links.append(f'<{request.url.include_query_params(page=page + 1)}>; rel="next"')
    links.append(f'<{request.url.include_query_params(page=total_pages)}>; rel="last"')
    response.headers["Link"] = ", ".join(links)
    return FractalPage(num_results=total, objects=objects, page=page, total_pages=total_pages)


@router.get(
    "/v1/fractal/{uuid}",
    response_model=FractalOut,
    name="get_fractal",
    dependencies=[RequireReader],
)
def get_fractal(uuid: FractalUuid, services: Svc) -> FractalOut:
    with services.database.reading() as session:
        row = store.get(session, uuid)
        if row is None:
            raise ApiError(404, f"fractal {uuid} not found")
        return FractalOut.of(row)


@router.delete(
    "/v1/fractal/{uuid}", status_code=204, response_class=Response, dependencies=[RequireClient]
)
def delete_fractal(uuid: FractalUuid, services: Svc) -> Response:
    with services.database.session() as session:
        if not store.delete_fractal(session, uuid):
            raise ApiError(404, f"fractal {uuid} not found")
    return Response(status_code=204)


@router.get(
    "/v1/batch/{batch}",
    response_model=BatchStatus,
    summary="Progress of a batch",
    dependencies=[RequireReader],
)
def batch_status(batch: str, services: Svc) -> BatchStatus:
    with services.database.reading() as session:
        counts = store.counts_by_status(session, batch=batch)
    total = sum(counts.values())
    if not total:
        raise ApiError(404, f"batch {batch} not found")
    unfinished = counts.get("queued", 0) + counts.get("running", 0)
    return BatchStatus(batch=batch, total=total, counts=counts, finished=unfinished == 0)


@router.put(
    "/v1/fractal/{uuid}",
    summary="Deliver a result: raw PNG bytes (image/png), or the original's JSON",
    dependencies=[RequireWorker],
    openapi_extra={
        "requestBody": {
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            }
        }
    },
)
async def put_result(
    uuid: FractalUuid,
    request: Request,
    services: Svc,
    checksum: Annotated[str | None, Query(min_length=64, max_length=64)] = None,
    duration: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    generated_by: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    c_real: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    c_imag: Annotated[float | None, Query(allow_inf_nan=False)] = None,
) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        png, meta = _legacy_result(
            uuid, await read_json(request, services.settings.max_upload_bytes)
        )
    elif content_type == "image/png":
        png = await read_limited(request, services.settings.max_upload_bytes)
        if checksum is None or duration is None or generated_by is None:
            raise ApiError(422, "checksum, duration and generated_by query parameters are required")
        try:
            meta = ResultMeta(
                uuid=uuid,
                checksum=checksum,
                duration=duration,
                generated_by=generated_by,
                c_real=c_real,
                c_imag=c_imag,
            )
        except ValidationError as error:  # half a constant
            raise ApiError(422, describe_validation(clean_errors(error.errors()))) from None
    else:
        raise ApiError(415, "expected Content-Type: image/png (or application/json)")
    from faafo.api.results import accept_results

    outcome = await accept_results(services, [(meta, png, None)])
    status = outcome[uuid]
    if status == "unknown":
        raise ApiError(404, f"fractal {uuid} not found")
    if status == "failed":
        raise ApiError(409, f"fractal {uuid} has failed; result refused")
    return {"uuid": uuid, "result": status}


def _legacy_result(uuid: str, payload: Any) -> tuple[bytes, ResultMeta]:
    """The original worker's PUT: JSON with a base64 image."""
    if not isinstance(payload, dict) or "image" not in payload:
        raise ApiError(422, "image: field required")
    try:
        png = base64.b64decode(payload["image"], validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise ApiError(422, "image: not valid base64") from None
    try:
        meta = ResultMeta(
            uuid=uuid,
            checksum=payload.get("checksum", ""),
            duration=payload.get("duration", 0.0),
            generated_by=payload.get("generated_by") or "unknown",
        )
    except ValidationError as error:
        raise ApiError(422, describe_validation(clean_errors(error.errors()))) from None
    return png, meta


_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Does an ``If-None-Match`` header match ``etag`` (RFC 9110, 13.1.2)?

    The header is ``*`` (any current representation) or a list of entity tags;
    the comparison is weak: ``W/"x"`` and ``"x"`` are the same tag.
    """
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = _ENTITY_TAG.fullmatch(etag)
    opaque = ours.group(1) if ours else etag
    return any(tag.group(1) == opaque for tag in _ENTITY_TAG.finditer(if_none_match))


def _cache_headers(request: Request, etag: str) -> tuple[dict[str, str], bool]:
    """Images never change once done: an ETag (the checksum) and a day of caching.

    Returns the headers and whether the client's copy is current (answer 304).
    """
    # Private reads: no shared cache (a proxy) may keep an image for other people.
    scope = "private" if deps.services(request).settings.private_reads else "public"
    headers = {"ETag": etag, "Cache-Control": f"{scope}, max-age=86400"}
    return headers, etag_matches(request.headers.get("if-none-match"), etag)


def _image_response(services: Services, uuid: str, request: Request) -> Response:
    """The PNG, streamed a chunk at a time; HEAD gets the same headers and no body."""
    with services.database.reading() as session:
        row = store.get(session, uuid)
        if row is None:
            raise ApiError(404, f"fractal {uuid} not found")
        if row.status != DONE:
            raise ApiError(404, f"fractal {uuid} is {row.status}; no image yet")
        size = row.size
        headers, unchanged = _cache_headers(request, f'"{row.checksum}"')
        if unchanged:
            return Response(status_code=304, headers=headers)
        if request.method == "HEAD":
            return _head(headers, size or 0)
        chunks = list(store.image_chunk_numbers(session, uuid))
        if len(chunks) == 1:
            data = store.image_chunk(session, uuid, chunks[0])
            return Response(data, media_type="image/png", headers=headers)

    def stream():  # type: ignore[no-untyped-def]
        for seq in chunks:
            with services.database.reading() as chunk_session:
                yield store.image_chunk(chunk_session, uuid, seq)

    headers["Content-Length"] = str(size)
    return StreamingResponse(stream(), media_type="image/png", headers=headers)


def _head(headers: dict[str, str], size: int) -> Response:
    """What GET would answer, without the body (its length still announced)."""
    return Response(
        status_code=200,
        media_type="image/png",
        headers={**headers, "Content-Length": str(size)},
    )


_IMAGE = {
    "response_class": Response,
    "responses": {200: {"content": {"image/png": {}}}, 304: {}, 404: {}},
    "dependencies": [RequireReader],
}


@router.get("/fractal/{uuid}", summary="The PNG", **_IMAGE)
def get_image(uuid: FractalUuid, request: Request, services: Svc) -> Response:
    return _image_response(services, uuid, request)


@router.head("/fractal/{uuid}", summary="The PNG's headers", **_IMAGE)
def head_image(uuid: FractalUuid, request: Request, services: Svc) -> Response:
    return _image_response(services, uuid, request)


@router.get("/fractal/{uuid}/thumbnail", summary="A small PNG for galleries", **_IMAGE)
def get_thumbnail(uuid: FractalUuid, request: Request, services: Svc) -> Response:
    return _thumbnail_response(services, uuid, request)


@router.head("/fractal/{uuid}/thumbnail", summary="The small PNG's headers", **_IMAGE)
def head_thumbnail(uuid: FractalUuid, request: Request, services: Svc) -> Response:
    return _thumbnail_response(services, uuid, request)


def _thumbnail_response(services: Services, uuid: str, request: Request) -> Response:
    with services.database.reading() as session:
        row = store.get(session, uuid)
        if row is None or row.status != DONE:
            raise ApiError(404, f"no thumbnail for {uuid}")
        headers, unchanged = _cache_headers(request, f'"t-{row.checksum}"')
        data: bytes | None = None
        if unchanged or request.method == "HEAD":  # the size will do: the bytes need not load
            size = store.thumbnail_size(session, uuid)
            if size and unchanged:
                return Response(status_code=304, headers=headers)
            if size:
                return _head(headers, size)
        else:
            data = store.thumbnail(session, uuid)
    if not data:
        # Small images are their own thumbnail.
        return _image_response(services, uuid, request)
    return Response(data, media_type="image/png", headers=headers)
