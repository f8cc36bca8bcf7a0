"""The HTML gallery: the original's page (5 finished fractals a page, with their data)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse

from faafo.api import deps
from faafo.api.services import Services
from faafo.store import fractals as store
from faafo.store.models import DONE

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(deps.services)]
PER_PAGE = 5


def _gallery(request: Request, services: Services, page: int) -> HTMLResponse:
    filters = store.Filters(status=DONE)
    with services.database.reading() as session:
        total = store.count(session, filters)
        total_pages = max(1, math.ceil(total / PER_PAGE))
        page = min(page, total_pages)
        rows = store.page(session, filters, page, PER_PAGE, newest_first=True)
        counts = store.counts_by_status(session)
    templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        "gallery.html",
        {
            "fractals": rows,
            "page": page,
            "total_pages": total_pages,
            "total": total,
            "counts": counts,
        },
    )


@router.get("/", response_class=HTMLResponse)
@router.get("/index", response_class=HTMLResponse)
def index(request: Request, services: Svc) -> HTMLResponse:
    return _gallery(request, services, 1)


@router.get("/index/{page}", response_class=HTMLResponse)
def index_page(request: Request, services: Svc, page: Annotated[int, Path(ge=1)]) -> HTMLResponse:
    return _gallery(request, services, page)
