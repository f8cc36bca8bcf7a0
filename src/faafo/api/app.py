"""The API's app factory: everything a process needs is built here, nothing at import."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

import faafo
from faafo.api import auth, errors, metrics
from faafo.api.limits import BodyLimit
from faafo.api.metrics import ApiMetrics
from faafo.api.routes import docs, fractals, health, pages, session, stats, worker
from faafo.api.services import Services
from faafo.config import ApiSettings
from faafo.messaging.publisher import Publisher
from faafo.store import migrate
from faafo.store.database import Database, connect

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


class Reconciler:
    """Periodically re-publishes tasks that lost their message or their worker."""

    def __init__(self, services: Services, interval: float) -> None:
        self._services = services
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._services.reconcile()
            except Exception:
                log.warning("reconcile failed; will retry", exc_info=True)


def _document_task_schema(app: FastAPI) -> None:
    """Create's body is parsed by hand (for 415/400 answers): add its schema to the document."""
    from fastapi.openapi.utils import get_openapi

    from faafo.api.schemas import TaskCreate

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            task = TaskCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(task.pop("$defs", {}))
            components["TaskCreate"] = task
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: ApiSettings,
    *,
    database: Database | None = None,
    publisher: Publisher | None = None,
) -> FastAPI:
    """Build the API for ``settings``; connections open lazily, migrations run on start-up.

    Token settings that would leave endpoints open raise ConfigurationError.
    """
    auth.check_token_settings(settings)
    database = database or connect(settings.database_url)
    publisher = publisher or Publisher(settings.transport_url)
    services = Services(settings=settings, database=database, publisher=publisher)
    services.metrics = ApiMetrics(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate:
            migrate.upgrade(database)
        reconciler = Reconciler(services, settings.reconcile_interval)
        reconciler.start()
        try:
            yield
        finally:
            reconciler.stop()
            publisher.close()
            database.dispose()

    app = FastAPI(
        title="faafo",
        version=faafo.__version__,
        summary="The Fractals app: create Julia and Mandelbrot fractal tasks, rendered by workers.",
        lifespan=lifespan,
        # FastAPI's Swagger UI and ReDoc load from public CDNs: /docs is our own page.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    app.state.templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    errors.install(app)
    app.add_middleware(
        BodyLimit,
        request_bytes=settings.max_request_bytes,
        upload_bytes=settings.max_upload_bytes,
    )
    metrics.install(app, services.metrics)
    for module in (fractals, worker, health, pages, stats, session, docs):
        app.include_router(module.router)
    pages.install(app)
    _document_task_schema(app)
    return app
