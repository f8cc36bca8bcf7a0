"""The HTML pages: the gallery (``/``, ``/index/N``) and one fractal's page (``/fractal/U/view``).

Pages are rendered on the server (Jinja2) so they work and are fast without
any build step; small ES modules under ``/static`` add what needs a script:
live counters and cards, the create form, zooming, deleting, and asking for
a token when the API wants one. Every URL the pages write is a path, never
an absolute URL: behind a TLS-terminating load balancer an ``http://`` URL
built from the request would be blocked as mixed content.

With ``--private-reads`` a page asked for without a credential answers 401
with a page that asks for the client token (and trades it for a reading
session cookie, see :mod:`faafo.api.auth`), not with JSON a person cannot use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse

import faafo
from faafo.api import auth, deps, gallery_queries
from faafo.api.routes.stats import collect
from faafo.api.schemas import FractalOut, canonical_uuid
from faafo.api.services import Services
from faafo.client.random_tasks import INTEGER_PARAMETERS, RANDOM_RANGES
from faafo.store import fractals as store
from faafo.store import stats as queries
from faafo.store.models import STATUSES, Fractal

router = APIRouter(include_in_schema=False, dependencies=[auth.RequirePageReader])
Svc = Annotated[Services, Depends(deps.services)]
PER_PAGE = 24
# The CLI's task count when --tasks is not given: random in this range.
TASKS_RANGE = (1, 10)
# The most tasks the create form sends (in requests of max_tasks_per_request each).
MAX_FORM_TASKS = 10_000

StatusQuery = Annotated[str | None, Query(max_length=16)]
WorkerQuery = Annotated[str | None, Query(max_length=255)]
AnchorQuery = Annotated[str | None, Query(max_length=80)]


@dataclass(frozen=True)
class View:
    """What the gallery shows: filters, the anchor pages count from, and the page."""

    filters: queries.GalleryFilters
    anchor: queries.Anchor | None
    page: int
    pinned: bool  # the anchor came from the URL (an older snapshot), not from "newest now"

    def query(self, **changes: Any) -> str:
        """This view's query string with ``changes``; empty values are left out."""
        params = {
            "status": self.filters.status,
            "worker": self.filters.worker,
            "at": self.anchor.encode() if self.anchor else None,
        }
        params.update(changes)
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        return "?" + urlencode(kept) if kept else ""


def ago(seconds: float) -> str:
    """How long ago, as the live script words it: ``just now``, ``4 s ago``, ``3 min ago``."""
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{round(seconds)} s ago"
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    return f"{round(seconds / 3600)} h ago"


def _filters(status: str | None, worker: str | None) -> queries.GalleryFilters:
    # An unknown status shows everything rather than an error page: these
    # come from links and hand-edited URLs, not from programs.
    return queries.GalleryFilters(
        status=status if status in STATUSES else None,
        worker=(worker or "").strip() or None,
    )


def _paths(request: Request) -> dict[str, str]:
    """URL templates for the scripts (``__uuid__`` stands for a fractal's uuid)."""

    def path(name: str, **params: str) -> str:
        return request.url_for(name, **params).path

    return {
        "create": path("create_fractals"),
        "record": path("get_fractal", uuid="__uuid__"),
        "view": path("fractal_view", uuid="__uuid__"),
        "thumbnail": path("get_thumbnail", uuid="__uuid__"),
        "stats": path("get_stats"),
        "cards": path("gallery_cards"),
        "gallery": path("index"),
        "session": path("start_session"),
    }


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page from ``template``, with what every page needs (paths, version, statuses)."""

    def path_for(name: str, **params: Any) -> str:
        return request.url_for(name, **{k: str(v) for k, v in params.items()}).path

    templates = request.app.state.templates
    response = templates.TemplateResponse(
        request,
        template,
        {
            "path_for": path_for,
            "paths": _paths(request),
            "version": faafo.__version__,
            "statuses": STATUSES,
            "private_reads": deps.services(request).settings.private_reads,
            **context,
        },
        status_code=status_code,
    )
    # Pages change with every finished task; images and static files carry their own caching.
    response.headers["Cache-Control"] = "no-store"
    return response


def install(app: FastAPI) -> None:
    """Page helpers for the templates, and the page that asks for a token (private reads)."""
    app.state.templates.env.filters["ago"] = ago

    @app.exception_handler(auth.PageRefused)
    async def _refused(request: Request, refused: auth.PageRefused) -> HTMLResponse:
        response = render(
            request, "private.html", {"message": refused.message}, status_code=refused.code
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response


def _results(services: Services, view: View) -> dict[str, Any]:
    """The page's rows and the numbers around them, from one read transaction.

    The anchor is read first and the page counted from it, also for a page
    typed without one: at READ COMMITTED (PostgreSQL's default) each
    statement sees the rows committed before it, so a page read before its
    anchor could hold a row the "Older" link's anchor then counts again.
    """
    with services.database.reading() as session:
        anchor = view.anchor if view.pinned else queries.newest(session, view.filters)
        total = queries.count_from(session, view.filters, anchor) if anchor else 0
        total_pages = max(1, math.ceil(total / PER_PAGE))
        page = min(view.page, total_pages)
        rows = queries.page_from(session, view.filters, anchor, page, PER_PAGE) if total else []
        newer = queries.count_newer(session, view.filters, anchor) if view.pinned and anchor else 0
        claims = gallery_queries.claim_sizes(session, rows)
    view = View(view.filters, anchor, page, view.pinned)
    return {
        "view": view,
        "fractals": rows,
        "claims": claims,
        "page": page,
        "total_pages": total_pages,
        "total": total,
        "newer": newer,
        "per_page": PER_PAGE,
    }


def _create_form(services: Services) -> dict[str, Any]:
    from faafo.engine import KINDS, PALETTES

    return {
        "ranges": RANDOM_RANGES,
        "integers": INTEGER_PARAMETERS,
        "tasks_range": TASKS_RANGE,
        "max_form_tasks": MAX_FORM_TASKS,
        "kinds": KINDS,
        "palettes": PALETTES,
        "max_tasks": services.settings.max_tasks_per_request,
        "max_iterations": services.settings.max_iterations,
        "max_pixels": services.settings.max_pixels,
    }


def _gallery(
    request: Request,
    services: Services,
    page: int,
    status: str | None,
    worker: str | None,
    at: str | None,
) -> HTMLResponse:
    anchor = queries.Anchor.decode(at)
    view = View(_filters(status, worker), anchor, page, pinned=anchor is not None)
    results = _results(services, view)
    stats = collect(services, queue=False)
    with services.database.reading() as session:
        names = gallery_queries.worker_names(session)
    workers = sorted(set(names) | ({view.filters.worker} if view.filters.worker else set()))
    return render(
        request,
        "gallery.html",
        {
            **results,
            "stats": stats,
            "worker_names": workers,
            "form": _create_form(services),
            "live": results["page"] == 1 and not results["view"].pinned,
        },
    )


@router.get("/", response_class=HTMLResponse, name="index")
@router.get("/index", response_class=HTMLResponse, name="index_alias")
def index(
    request: Request,
    services: Svc,
    status: StatusQuery = None,
    worker: WorkerQuery = None,
    at: AnchorQuery = None,
) -> HTMLResponse:
    """The newest fractals, updated live."""
    return _gallery(request, services, 1, status, worker, at)


@router.get("/index/{page}", response_class=HTMLResponse, name="index_page")
def index_page(
    request: Request,
    services: Svc,
    page: Annotated[int, Path(ge=1)],
    status: StatusQuery = None,
    worker: WorkerQuery = None,
    at: AnchorQuery = None,
) -> HTMLResponse:
    """Page N counted from the anchor in ``at`` (from the newest row now, without one)."""
    return _gallery(request, services, page, status, worker, at)


@router.get("/gallery/cards", response_class=HTMLResponse, name="gallery_cards")
def gallery_cards(
    request: Request, services: Svc, status: StatusQuery = None, worker: WorkerQuery = None
) -> HTMLResponse:
    """The first page's cards and pagers alone: what the live gallery merges in."""
    view = View(_filters(status, worker), None, 1, pinned=False)
    return render(request, "_results.html", _results(services, view))


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _timings(row: Fractal) -> list[tuple[str, float | None]]:
    """Where the time went: waiting for a worker, rendering, and end to end."""
    return [
        ("Waited in the queue", _seconds_between(row.created_at, row.started_at)),
        ("Rendering", row.duration),
        ("Created to finished", _seconds_between(row.created_at, row.finished_at)),
    ]


@router.get("/fractal/{uuid}/view", response_class=HTMLResponse, name="fractal_view")
def fractal_view(request: Request, services: Svc, uuid: str) -> HTMLResponse:
    """One fractal: the full image, every field of the original's ``show``, and actions."""
    with services.database.reading() as session:
        # Found in any case, as by the API's routes (deps.fractal_uuid); a string that is
        # no UUID keeps this page's 404 rather than the API's JSON one.
        row = store.get(session, canonical_uuid(uuid) or uuid)
        claims = gallery_queries.claim_sizes(session, [row] if row else [])
    stats = collect(services, recent=0, queue=False)
    if row is None:
        return render(request, "not_found.html", {"uuid": uuid, "stats": stats}, status_code=404)
    return render(
        request,
        "detail.html",
        {
            "f": row,
            "record": FractalOut.of(row).model_dump(mode="json"),
            "timings": _timings(row),
            "claimed_with": claims.get(row.uuid, 1) - 1,
            "stats": stats,
            "zooms": (2, 4, 8, 16),
        },
    )
