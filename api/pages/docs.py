"""/docs and /redoc without a CDN: Swagger UI and ReDoc served from the `fastapi-offline` package's
files (installed from PyPI), so the API's documentation works on a closed network."""

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)
ASSETS = Path(str(files("fastapi_offline") / "static"))
SERVED = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}


@router.get("/docs")
def swagger_ui(request: Request):
    return get_swagger_ui_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} — API",
                               swagger_js_url="/static/docs/swagger-ui-bundle.js",
                               swagger_css_url="/static/docs/swagger-ui.css",
                               swagger_favicon_url="/static/docs/favicon.png",
                               oauth2_redirect_url="/docs/oauth2-redirect",
                               # No badge from the public validator: nothing leaves this server.
                               swagger_ui_parameters={"validatorUrl": None})


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect():
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request):
    return get_redoc_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} — API",
                          redoc_js_url="/static/docs/redoc.standalone.js", redoc_favicon_url="/static/docs/favicon.png",
                          with_google_fonts=False)


@router.get("/static/docs/{name}")
def docs_asset(name: str):
    if name not in SERVED:
        raise HTTPException(404, "no such file")
    return FileResponse(ASSETS / name, headers={"Cache-Control": "public, max-age=86400"})
