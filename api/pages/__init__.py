"""Pages for people: citizens file and follow appeals, staff work their queues, supervisors watch
the figures, the public reads aggregates. Server-rendered (Jinja2), Chinese and English. Pages add no
rule of their own: they call the same domain functions as the JSON endpoints."""

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from appealflow.api import outage
from appealflow.api.pages import citizen, desk, docs, signed_in, staff, supervise
from appealflow.api.pages.client import Unavailable
from appealflow.api.pages.common import HERE, render
from appealflow.api.pages.negotiate import BrowserToPage

# Paths the pages serve (the JSON API has none of these); an outage there is answered with a page.
PAGE_PATHS = ("/file", "/t/", "/track", "/work", "/supervise", "/open", "/staff/sign-in", "/staff/sign-out")


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or path.startswith(PAGE_PATHS)


def unavailable_page(request: Request):
    """503 with Retry-After, and a page in the reader's language saying to try again shortly."""
    response = render(request, "unavailable.html", {"retry_after": outage.RETRY_AFTER_SECONDS}, status=503)
    response.headers["Retry-After"] = str(outage.RETRY_AFTER_SECONDS)
    return response


def _page_or_json(json_handler):
    async def handle(request: Request, error: Exception):
        if is_page(request):
            return unavailable_page(request)
        return await json_handler(request, error)

    return handle


def install(app: FastAPI) -> None:
    app.include_router(docs.router)
    app.include_router(citizen.router)
    app.include_router(staff.router)
    app.include_router(desk.router)
    app.include_router(supervise.router)
    signed_in.install(app)
    app.add_middleware(BrowserToPage)  # message links opened in a browser show the page
    app.mount("/static/pages", StaticFiles(directory=HERE / "static"), name="page_assets")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():  # browsers ask for it whatever the page says; an SVG is what every current one shows
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})
    for kind in outage.OUTAGE_ERRORS:  # installed by outage.install, which runs first
        app.add_exception_handler(kind, _page_or_json(app.exception_handlers[kind]))

    async def _api_unavailable(request: Request, _: Exception):
        return unavailable_page(request)

    app.add_exception_handler(Unavailable, _api_unavailable)
