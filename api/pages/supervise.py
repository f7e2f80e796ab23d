"""The supervisor's dashboard (lists, the rates with their formulas, charts that refresh without a
reload) and the public open-government page (aggregates only: no personal data, no appeal text).
The supervisor's figures come from the supervision API; the public ones from the same domain
functions (models.supervision), reduced to totals."""

import asyncio
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from appealflow.api.pages.client import field_errors
from appealflow.api.pages.common import catalogue, check_csrf, finish, language, render
from appealflow.api.pages.signed_in import OversightPage, current
from appealflow.api.pages.staff import api_for
from appealflow.models.appeals.enums import OVERSIGHT_ROLES
from appealflow.models.city.department import Category
from appealflow.models.oversight.export_words import ReaderNames
from appealflow.models.oversight.figures import backlog_and_breaches, overall_rates, public_figures
from appealflow.models.oversight.supervision import FORMULAS
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

router = APIRouter(include_in_schema=False)
PLOTLY = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
WEEKS = 8
DAYS = 14


LEAFLET = Path(str(files("xstatic.pkg.leaflet") / "data"))
LEAFLET_FILES = {"leaflet.js": "text/javascript", "leaflet.css": "text/css",
                 **{f"images/{name}": "image/png" for name in ("marker-icon.png", "marker-icon-2x.png",
                                                               "marker-shadow.png", "layers.png", "layers-2x.png")}}


@router.get("/static/vendor/leaflet/{name:path}")
def leaflet_file(name: str):
    """Leaflet's own build, from the XStatic-Leaflet package installed from PyPI (no CDN)."""
    if name not in LEAFLET_FILES:
        raise HTTPException(404, "not found")
    return FileResponse(LEAFLET / name, media_type=LEAFLET_FILES[name],
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/static/vendor/plotly.min.js")
def plotly_js():
    """Plotly's own build, from the `plotly` package installed from PyPI (no CDN)."""
    return FileResponse(PLOTLY, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


def _history(now: datetime) -> dict:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        found = backlog_and_breaches(session, now, ZoneInfo(settings.timezone), DAYS)
        found["topic_names"] = ReaderNames.read(session).by_kind()  # hot topics by name, not code
        return found


def _public() -> dict:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return public_figures(session, utcnow())


FILTERS = ("start", "end", "district", "department", "category")


def chosen_filters(request: Request) -> dict[str, str]:
    """The dashboard's filters as the URL holds them (period as local dates, and the three scopes)."""
    return {k: v.strip() for k in FILTERS if (v := request.query_params.get(k, "")).strip()}


async def dashboard_figures(request: Request) -> dict:
    api = api_for(request)
    now = utcnow()
    zone = ZoneInfo(get_settings().timezone)
    chosen = chosen_filters(request)
    scope = {k: v for k, v in chosen.items() if k not in ("start", "end")}
    week_ends = [now - timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]
    calls = [api.get("/supervision/rates", params=chosen),
             api.get("/supervision/appeals", params={"measure": "overdue", **chosen}),
             api.get("/supervision/at-risk", params=scope),
             api.get("/supervision/hot-topics", params={"hours": 72, "min_count": 2}),
             api.get("/supervision/pending")]
    calls += [api.get("/supervision/rates", params={"start": (end - timedelta(weeks=1)).isoformat(),
                                                    "end": end.isoformat(), **scope}) for end in week_ends]
    calls.append(api.get("/supervision/undelivered"))
    answers = await asyncio.gather(*calls)
    if answers[0].status_code == 422:  # a filter the API refused (a bad date): said on the page
        raise BadFilter(field_errors(answers[0]))
    for answer in answers:
        answer.raise_for_status()
    rates, overdue, risky, hot, pending = (a.json() for a in answers[:5])
    weekly = [overall_rates(a.json()["rows"]) for a in answers[5:5 + WEEKS]]
    history = await run_in_threadpool(_history, now)
    return {
        "at": now.isoformat(), "zone": get_settings().timezone, "rates": rates["rows"], "formulas": FORMULAS,
        "overdue": overdue["rows"],
        "at_risk": risky["rows"], "hot_topics": hot["rows"], "pending": pending,
        "undelivered": answers[-1].json().get("rows", []),
        "trend": {"weeks": [f"{e.astimezone(zone):%m-%d}" for e in week_ends], "rates": weekly},
        **history,
    }


class BadFilter(Exception):
    def __init__(self, errors: dict):
        super().__init__(errors)
        self.errors = errors


@router.get("/supervise")
async def dashboard(request: Request, staff: OversightPage):
    chosen = chosen_filters(request)
    try:
        figures = _jsonable(await dashboard_figures(request))
    except BadFilter as refused:
        return render(request, "dashboard_refused.html", {"errors": refused.errors, "chosen": chosen,
                                                          "options": await run_in_threadpool(_names)},
                      staff=staff, status=422)
    return render(request, "dashboard.html", {"figures": figures, "names": figures["names"], "now": utcnow(),
                                              "words": catalogue(language(request)), "chosen": chosen,
                                              "query": urlencode(chosen),
                                              # the filters' choices: the names the figures came with
                                              "options": {"department": figures["names"], **figures["topic_names"]},
                                              "measure_of": MEASURE_OF}, staff=staff)


MEASURE_OF = {"dispatched": "dispatched", "anonymous": "anonymous", "with_photos": "with_photos",
              "response_rate": "dispatched",
              "resolution_rate": "rated", "satisfaction_rate": "rated", "on_time_rate": "dispatched",
              "return_rate": "dispatched", "reopen_rate": "reopens", "backlog": "backlog", "overdue": "overdue"}


@router.get("/supervise/appeals")
async def figure_appeals(request: Request, staff: OversightPage):
    """The appeals behind one figure of the dashboard, with its period and filters."""
    chosen = chosen_filters(request)
    measure = request.query_params.get("measure", "")
    if measure not in MEASURE_OF.values():
        return render(request, "not_found.html", {}, staff=staff, status=404)
    answer = await api_for(request).get("/supervision/appeals", params={"measure": measure, **chosen})
    names = await run_in_threadpool(_names)
    if answer.status_code != 200:
        return render(request, "dashboard_refused.html", {"errors": field_errors(answer), "chosen": chosen,
                                                          "options": names},
                      staff=staff, status=answer.status_code if answer.status_code < 500 else 502)
    rows = answer.json()["rows"]
    for row in rows:
        row["resolve_due_at"] = datetime.fromisoformat(row["resolve_due_at"]) if row["resolve_due_at"] else None
    query = urlencode({"measure": measure, **chosen})
    return render(request, "figure_appeals.html", {"rows": rows, "measure": measure, "chosen": chosen,
                                                   "names": names, "query": query}, staff=staff)


@router.get("/supervise/routing")
async def routing_quality_page(request: Request, staff: OversightPage):
    """How routing did over the last 30 days (or the period asked): per category, department and
    model version, with the model versions' own figures."""
    period = {k: v for k, v in request.query_params.items() if k in ("start", "end") and v}
    answer = await api_for(request).get("/supervision/routing-quality", params=period)
    names = await run_in_threadpool(_names)
    if answer.status_code != 200:
        return render(request, "dashboard_refused.html", {"errors": field_errors(answer), "chosen": period,
                                                          "options": names},
                      staff=staff, status=answer.status_code if answer.status_code < 500 else 502)
    figures = answer.json()
    for version in figures["versions"]:
        version["promoted_at"] = datetime.fromisoformat(version["promoted_at"]) if version["promoted_at"] else None
    categories = await run_in_threadpool(_category_names)
    return render(request, "routing_quality.html", {"figures": figures, "names": names, "categories": categories,
                                                    "start": datetime.fromisoformat(figures["start"]),
                                                    "end": datetime.fromisoformat(figures["end"])}, staff=staff)


def _category_names() -> dict:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return {c.code: c for c in session.exec(select(Category))}


def _names() -> dict:
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        names = ReaderNames.read(session)
    return {"department": {c: {"name_zh": zh, "name_en": en} for c, (zh, en) in names.departments.items()},
            **names.by_kind()}


EXPORTS = ("rates", "overdue", "at-risk", "hot-topics", "undelivered", "appeals", "pending")


@router.get("/supervise/export/{name}.{kind}")
async def export(request: Request, name: str, kind: str, staff: OversightPage):
    """The supervision API's CSV or XLSX in the page's language, for a browser signed in with the page cookie."""
    if name not in EXPORTS or kind not in ("csv", "xlsx"):
        return render(request, "not_found.html", {}, staff=staff, status=404)
    params = {"format": kind, "lang": language(request), **chosen_filters(request)}
    if name in ("rates", "appeals") and request.query_params.get("measure"):
        params["measure"] = request.query_params["measure"]
    answer = await api_for(request).get(f"/supervision/{name}", params=params)
    return Response(answer.content, status_code=answer.status_code,
                    media_type=answer.headers.get("content-type", "application/octet-stream"),
                    headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'})


@router.post("/supervise/undelivered/{notification_id}/retry")
async def retry_undelivered(request: Request, notification_id: Annotated[int, PathParam(ge=1, le=2**62)],
                            csrf: Annotated[str, Form(max_length=200)], staff: OversightPage):
    """A dead letter sent again, through the supervision API's retry (which checks the role)."""
    check_csrf(request, csrf)
    answer = await api_for(request).post(f"/supervision/undelivered/{notification_id}/retry")
    if answer.status_code not in (200, 404, 409):
        answer.raise_for_status()
    return RedirectResponse("/supervise", status_code=303)


@router.get("/supervise/figures.json")
async def dashboard_json(request: Request):
    staff = await current(request)
    if staff is None or staff.role not in OVERSIGHT_ROLES:
        return JSONResponse({"detail": "sign in as a supervisor"}, status_code=401)
    return JSONResponse(_jsonable(await dashboard_figures(request)), headers={"Cache-Control": "no-store"})


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@router.get("/open")
async def open_government(request: Request):
    return render(request, "open.html", {"figures": await run_in_threadpool(_public)})


@router.get("/open/figures.json")
async def open_figures():
    return JSONResponse(await run_in_threadpool(_public), headers={"Cache-Control": "no-store"})


@router.post("/supervise/orders")
async def issue_order(request: Request, staff: OversightPage):
    """A supervision order from the list of a figure's appeals: to a department, about the appeals
    ticked, by a day."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    back = str(form.get("back") or "")
    back = back if back.startswith("measure=") else ""
    body = {"department": str(form.get("department") or ""), "subject": str(form.get("subject") or ""),
            "due": str(form.get("due") or ""), "appeals": [str(c) for c in form.getlist("appeals")]}
    answer = await api_for(request).post("/supervision/orders", json=body)
    notice = "order" if answer.status_code == 201 else "order_refused"
    response = RedirectResponse(f"/supervise/appeals?{back}&notice={notice}", status_code=303)
    finish(request, response)
    return response
