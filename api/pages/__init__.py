"""Pages for people: citizens file and follow appeals, staff work their queues, supervisors watch
the figures, the public reads aggregates. Server-rendered (Jinja2), Chinese and English. Pages add no
rule of their own: they call the same domain functions as the JSON endpoints."""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from appealflow.api.pages import citizen, docs, staff, supervise
from appealflow.api.pages.common import HERE
from appealflow.api.pages.negotiate import BrowserToPage


def install(app: FastAPI) -> None:
    app.include_router(docs.router)
    app.include_router(citizen.router)
    app.include_router(staff.router)
    app.include_router(supervise.router)
    app.add_middleware(BrowserToPage)  # message links opened in a browser show the page
    app.mount("/static/pages", StaticFiles(directory=HERE / "static"), name="page_assets")
