"""Bearer tokens: clients create and delete, workers deliver results, anyone reads.

With no tokens configured the API is open (the original's behaviour, fine on
a laptop). With tokens, both must be set (:func:`check_token_settings`): a
client token alone would leave the worker endpoints open, so anyone could
fail or forge results. ``client_token`` guards creating and deleting,
``worker_token`` the worker endpoints, so a client cannot forge results and
a worker cannot delete. ``private_reads`` makes reading need the client token
too. Comparisons take constant time; tokens are never logged.

Private reads and the browser: a plain ``<img>`` or a link cannot send an
``Authorization`` header, so the pages would show broken images. A reader
therefore may also present a *reading session* cookie, made by
``POST /v1/session`` from the client token: ``EXPIRY.MAC`` where MAC is an
HMAC-SHA256 of the expiry keyed with the token. It is HttpOnly (scripts never
see it) and SameSite=Strict (no other site can make the browser send it).
This was chosen over signed image URLs because it covers every reader route at
once (pages, images, the cards fragment, stats, metrics) without putting
credentials into URLs, which end up in logs, histories and Referer headers;
and it needs no state on the server, so any number of API processes accept
it. Withdrawing a token from the configuration ends the sessions made with
it. The cookie only ever grants reading: creating and deleting still need the
header, so a forged cross-site request can do nothing with it.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from faafo.api import deps
from faafo.api.errors import ApiError
from faafo.api.services import Services
from faafo.config import ApiSettings, ConfigurationError

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <token>")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

READER_COOKIE = "faafo_reader"
READER_SESSION_SECONDS = 12 * 3600
_COOKIE_CONTEXT = b"faafo reading session\x00"


def _matches(given: str, accepted: list[str]) -> bool:
    # Compare against every accepted token without stopping early.
    found = False
    for token in accepted:
        found |= hmac.compare_digest(given.encode(), token.encode())
    return found


class Refused(Exception):
    """No valid credential for a route: 401 (none given) or 403 (a wrong one)."""

    def __init__(self, code: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


def _check(
    credentials: HTTPAuthorizationCredentials | None, accepted: list[str], role: str
) -> None:
    if not accepted:
        return
    if credentials is None:
        raise Refused(
            401,
            f"this API needs a {role} token (Authorization: Bearer ...)",
            {"WWW-Authenticate": "Bearer"},
        )
    if not _matches(credentials.credentials, accepted):
        raise Refused(
            403,
            f"the token is not a valid {role} token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


def _require(
    credentials: HTTPAuthorizationCredentials | None, accepted: list[str], role: str
) -> None:
    try:
        _check(credentials, accepted, role)
    except Refused as refused:
        raise ApiError(refused.code, refused.message, headers=refused.headers) from None


# -- reading sessions -----------------------------------------------------------


def _mac(token: str, expires: int) -> str:
    return hmac.new(
        token.encode(), _COOKIE_CONTEXT + str(expires).encode(), hashlib.sha256
    ).hexdigest()


def reader_cookie(token: str, now: float | None = None) -> str:
    """The cookie value of a reading session made from ``token``, valid for 12 hours."""
    expires = int(now if now is not None else time.time()) + READER_SESSION_SECONDS
    return f"{expires}.{_mac(token, expires)}"


def valid_reader_cookie(value: str | None, accepted: list[str], now: float | None = None) -> bool:
    """Whether ``value`` is an unexpired session made from one of the ``accepted`` tokens."""
    if not value or not accepted:
        return False
    expires_text, _, given = value.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < (now if now is not None else time.time()):
        return False
    found = False
    for token in accepted:  # every token, no early exit
        found |= hmac.compare_digest(given.encode(), _mac(token, expires).encode())
    return found


def _check_reader(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    settings = deps.services(request).settings
    if not settings.private_reads:
        return
    accepted = settings.client_tokens()
    if credentials is None and valid_reader_cookie(request.cookies.get(READER_COOKIE), accepted):
        return
    _check(credentials, accepted, "client")


# -- dependencies ---------------------------------------------------------------


def client_access(request: Request, credentials: Credentials) -> None:
    services: Services = deps.services(request)
    _require(credentials, services.settings.client_tokens(), "client")


def worker_access(request: Request, credentials: Credentials) -> None:
    services: Services = deps.services(request)
    _require(credentials, services.settings.worker_tokens(), "worker")


def read_access(request: Request, credentials: Credentials) -> None:
    """Reading: open, unless ``private_reads``; then the client token or a reading session."""
    try:
        _check_reader(request, credentials)
    except Refused as refused:
        raise ApiError(refused.code, refused.message, headers=refused.headers) from None


class PageRefused(Exception):
    """A page asked for without a credential: answered with an HTML page that asks for it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def page_access(request: Request, credentials: Credentials) -> None:
    """Like :func:`read_access`, but a refusal is a page for people, not JSON."""
    try:
        _check_reader(request, credentials)
    except Refused as refused:
        raise PageRefused(refused.code, refused.message) from None


RequireClient = Depends(client_access)
RequireWorker = Depends(worker_access)
RequireReader = Depends(read_access)
RequirePageReader = Depends(page_access)


# -- start-up checks ------------------------------------------------------------


def check_token_settings(settings: ApiSettings) -> None:
    """Refuse configurations that leave endpoints open by accident.

    A client token without a worker token used to leave the worker endpoints
    open: anyone could fail every task or deliver forged images. The reverse
    leaves creating and deleting open while the operator believes the API is
    locked. Private reads without a client token would be public.
    """
    client, worker = settings.client_tokens(), settings.worker_tokens()
    if bool(client) != bool(worker):
        given, missing = ("client", "worker") if client else ("worker", "client")
        raise ConfigurationError(
            f"a {given} token is set but no {missing} token: set both --client-token and "
            "--worker-token (FAAFO_CLIENT_TOKEN, FAAFO_WORKER_TOKEN), or neither for an open API"
        )
    if settings.private_reads and not client:
        raise ConfigurationError(
            "--private-reads needs a client token (--client-token or FAAFO_CLIENT_TOKEN)"
        )


def warn_tokens_on_command_line(args: argparse.Namespace) -> None:
    """Log (never the value) when a token came as a flag: every local user sees it in ``ps``."""
    for name in ("client_token", "worker_token"):
        if getattr(args, name, None):
            log.warning(
                "--%s was given on the command line, where every user of this machine can "
                "read it (ps, /proc); set FAAFO_%s or put it in the configuration file instead",
                name.replace("_", "-"),
                name.upper(),
            )
