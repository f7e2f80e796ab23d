"""The FastAPI application."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from appealflow.api import auth, errors, intake, open311, outage, supervision, tracking, workbench
from appealflow.settings import get_settings


def create_app() -> FastAPI:
    app = FastAPI(title="AppealFlow", version="0.1.0",
                  description="Citizens' appeals: intake, dispatch, tracking.")
    limit = get_settings().max_body_bytes

    @app.middleware("http")
    async def _limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return JSONResponse(status_code=413, content={"detail": f"request body over {limit} bytes"})
        return await call_next(request)

    errors.install(app)
    outage.install(app)  # /health, /health/ready, and 503 when the database or Redis is unreachable
    app.include_router(intake.router)
    app.include_router(tracking.router)
    app.include_router(auth.router)
    app.include_router(workbench.router)
    app.include_router(supervision.router)
    app.include_router(open311.router)
    app.include_router(open311.admin)
    return app


app = create_app()
