"""The HTML pages: the gallery (``/``, ``/index/N``) and one fractal's page (``/fractal/U/view``).

Pages are rendered on the server (Jinja2) so they work and are fast without
any build step; small ES modules under ``/static`` add what needs a script:
live counters and cards, the create form, zooming, deleting, and asking for
a token when the API wants one. Every URL the pages write is a path, never
an absolute URL: behind a TLS-terminating load balancer an ``http://`` URL
built from the request would be blocked as mixed content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

import faafo
from faafo.api import deps
from faafo.api.routes.stats import collect
from faafo.api.schemas import FractalOut
from faafo.api.services import Services
from faafo.client.random_tasks import INTEGER_PARAMETERS, RANDOM_RANGES
from faafo.store import fractals as store
from faafo.store import stats as queries
from faafo.store.models import STATUSES, Fractal

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(deps.services)]
PER_PAGE = 24
# The CLI's task count when --tasks is not given: random in this range.
TASKS_RANGE = (1, 10)

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
    }


def _render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
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
            **context,
        },
        status_code=status_code,
    )
    # Pages change with every finished task; images and static files carry their own caching.
    response.headers["Cache-Control"] = "no-store"
    return response


def _results(services: Services, view: View) -> dict[str, Any]:
    """The page's rows and the numbers around them, from one read transaction."""
    with services.database.reading() as session:
        # Unpinned pages count from the newest row now: the same rows as no
        # bound at all, which is cheaper to query.
        bound = view.anchor if view.pinned else None
        total = queries.count_from(session, view.filters, bound)
        total_pages = max(1, math.ceil(total / PER_PAGE))
        page = min(view.page, total_pages)
        rows = queries.page_from(session, view.filters, bound, page, PER_PAGE) if total else []
        if view.pinned:
            anchor = view.anchor
        elif page == 1 and rows:
            anchor = queries.Anchor(rows[0].created_at, rows[0].uuid)  # the newest row itself
        else:
            anchor = queries.newest(session, view.filters)
        newer = queries.count_newer(session, view.filters, anchor) if view.pinned and anchor else 0
    view = View(view.filters, anchor, page, view.pinned)
    return {
        "view": view,
        "fractals": rows,
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
    workers = sorted({w.name for w in stats.workers} | ({worker} if worker else set()))
    return _render(
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
    return _render(request, "_results.html", _results(services, view))


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
        row = store.get(session, uuid)
    stats = collect(services, recent=0, queue=False)
    if row is None:
        return _render(request, "not_found.html", {"uuid": uuid, "stats": stats}, status_code=404)
    return _render(
        request,
        "detail.html",
        {
            "f": row,
            "record": FractalOut.of(row).model_dump(mode="json"),
            "timings": _timings(row),
            "stats": stats,
            "zooms": (2, 4, 8, 16),
        },
    )
