"""``POST/DELETE /v1/session``: a browser's reading session, for ``--private-reads``.

With private reads every page, image and stats request needs the client
token, but an ``<img>`` cannot send an ``Authorization`` header. The pages
therefore trade the token (sent once, as a Bearer header) for an HttpOnly,
SameSite=Strict cookie that :mod:`faafo.api.auth` accepts for reading only;
see there for why this beats signed image URLs.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from faafo.api import auth, deps

router = APIRouter(prefix="/v1/session", tags=["session"])

_REFUSALS = {
    401: {"description": "no token given (Authorization: Bearer <client token>)"},
    403: {"description": "the token is not a valid client token"},
}


@router.post(
    "",
    status_code=204,
    response_class=Response,
    name="start_session",
    summary="Trade the client token for a reading-session cookie (for browsers)",
    responses={204: {"description": "the cookie is set (when the API has tokens)"}, **_REFUSALS},
)
def start_session(request: Request, credentials: auth.Credentials) -> Response:
    """Check the client token (constant time) and set the ``faafo_reader`` cookie.

    The cookie lets the browser read for 12 hours: pages, images, stats,
    metrics. It never lets it create or delete. An API without tokens has
    nothing to check and sets no cookie.
    """
    accepted = deps.services(request).settings.client_tokens()
    auth.client_access(request, credentials)
    response = Response(status_code=204)
    if accepted and credentials is not None:
        response.set_cookie(
            auth.READER_COOKIE,
            auth.reader_cookie(credentials.credentials),
            max_age=auth.READER_SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


@router.delete(
    "",
    status_code=204,
    response_class=Response,
    name="end_session",
    summary="Remove the reading-session cookie",
)
def end_session(request: Request) -> Response:
    """Forget the session in this browser ("Forget the saved API token")."""
    response = Response(status_code=204)
    response.delete_cookie(
        auth.READER_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
