"""Errors as values at the edge: every failure is JSON ``{"code", "message"}``.

Validation problems are 422 with one readable sentence plus the details; a
database or queue that is down, or a connection pool with no free connection,
is 503 (retry later), never a 500 traceback. A uniqueness violation (two API
processes inserting the same uuid at once) is a conflict, 409.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from faafo.api.services import InvalidTask
from faafo.store.fractals import DuplicateTask
from faafo.store.idempotency import KeyReused, ReplayGone

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


def problem(code: int, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, **extra}, status_code=code)


def describe_validation(errors: list[dict]) -> str:
    """One sentence for the first problem: ``width: Input should be greater than 0``."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


def clean_errors(errors: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        response = problem(error.code, error.message)
        if error.headers:
            response.headers.update(error.headers)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        response = problem(error.status_code, str(error.detail))
        if error.headers:
            response.headers.update(error.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem(400, "request body is not valid JSON")
        return problem(422, describe_validation(errors), errors=clean_errors(errors))

    @app.exception_handler(InvalidTask)
    async def _limit(_: Request, error: InvalidTask) -> JSONResponse:
        return problem(422, str(error))

    @app.exception_handler(DuplicateTask)
    @app.exception_handler(ReplayGone)
    async def _duplicate(_: Request, error: Exception) -> JSONResponse:
        return problem(409, str(error))

    @app.exception_handler(KeyReused)
    async def _key_reused(_: Request, error: KeyReused) -> JSONResponse:
        return problem(422, str(error))

    @app.exception_handler(IntegrityError)
    async def _conflict(_: Request, error: IntegrityError) -> JSONResponse:
        # The routes turn the races they know into DuplicateTask; this is the net
        # under any other: a unique or foreign key violation is the client's
        # conflict with a concurrent change, not a database outage.
        log.info("integrity error: %s", error.__class__.__name__, exc_info=True)
        return problem(409, "the request conflicts with a concurrent change; reload and retry")

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_: Request, error: Exception) -> JSONResponse:
        return problem(422, "a number in the request is out of range")

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _database_down(_: Request, error: DBAPIError) -> JSONResponse:
        log.warning("database error: %s", error.__class__.__name__, exc_info=True)
        response = problem(503, "database unavailable, try again shortly")
        response.headers["Retry-After"] = "2"
        return response

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(_: Request, error: PoolTimeout) -> JSONResponse:
        # Every pooled connection stayed busy for the whole pool timeout: overload,
        # not a fault of the request. Clients and workers retry after a moment.
        log.warning("no free database connection: %s", error)
        response = problem(503, "database busy (no free connection), try again shortly")
        response.headers["Retry-After"] = "2"
        return response
