"""Request-scoped access to the per-process services built by the app factory."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from faafo.api.errors import ApiError
from faafo.api.schemas import canonical_uuid
from faafo.api.services import Services

UUID_LENGTH = 36  # the stored form, and the width of the uuid column


def services(request: Request) -> Services:
    return request.app.state.services


def fractal_uuid(
    uuid: Annotated[str, Path(max_length=64, description="the fractal's UUID, in any case")],
) -> str:
    """The ``{uuid}`` path parameter as stored: lower case, hyphenated.

    The API lower-cases the uuids it is given when it creates tasks, so every
    route that looks one up normalises the path the same way
    (``/v1/fractal/ABCDEF00-...`` finds what ``abcdef00-...`` created). A string
    that is no UUID stays as it is and simply matches nothing (404); one longer
    than any stored uuid (36 characters) is answered 404 at once.
    """
    canonical = canonical_uuid(uuid)
    if canonical is not None:
        return canonical
    if len(uuid) > UUID_LENGTH:
        raise ApiError(404, f"fractal {uuid} not found")
    return uuid


# Use as the type of a route's ``uuid`` parameter: ``def route(uuid: FractalUuid)``.
FractalUuid = Annotated[str, Depends(fractal_uuid)]
