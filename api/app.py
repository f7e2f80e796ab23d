"""The FastAPI application."""

from fastapi import FastAPI

from appealflow import metrics
from appealflow.api import (
    auth,
    desk,
    errors,
    files,
    intake,
    outage,
    pages,
    reference,
    routing,
    short_links,
    supervision,
    tracking,
    workbench,
)
from appealflow.api.open311 import endpoints as open311
from appealflow.settings import get_settings


def create_app() -> FastAPI:
    # /docs and /redoc come from api/pages/docs.py, with their assets served locally (no CDN).
    app = FastAPI(title="AppealFlow", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Citizens' appeals: intake, dispatch, tracking.")
    settings = get_settings()

    # Counts the body as it streams (chunked too): 413 past the limit; 422 for unstorable text; 408
    # for a body that has not arrived in time.
    app.add_middleware(errors.InputGuard, limit=settings.max_body_bytes,
                       body_timeout=settings.request_body_timeout_seconds,
                       upload_limit=6 * settings.max_file_bytes + settings.max_body_bytes)

    errors.install(app)
    outage.install(app)  # /health, /health/ready, and 503 when the database or Redis is unreachable
    app.include_router(intake.router)
    app.include_router(tracking.router)
    app.include_router(auth.router)
    # Before the workbench: its POST /staff/appeals/{code}/{action} would take .../files for an action.
    app.include_router(files.router)
    app.include_router(files.staff_router)
    app.include_router(workbench.router)
    app.include_router(desk.router)
    app.include_router(supervision.router)
    app.include_router(open311.router)
    app.include_router(open311.admin)
    app.include_router(reference.router)
    app.include_router(short_links.router)
    app.include_router(routing.router)
    pages.install(app)  # the HTML pages for citizens, staff and the public (api/pages)
    metrics.install(app)  # GET /metrics, and latency by route around everything above
    return app


app = create_app()
