"""The supervisor's dashboard (lists, the rates with their formulas, charts that refresh without a
reload) and the public open-government page (aggregates only: no personal data, no appeal text).
The supervisor's figures come from the supervision API; the public ones from the same domain
functions (models.supervision), reduced to totals."""

import asyncio
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlmodel import col
from starlette.concurrency import run_in_threadpool

from appealflow.api.pages.common import catalogue, check_csrf, language, render, sign_in_redirect
from appealflow.api.pages.staff import api_for, current
from appealflow.models.appeal import Appeal, AppealEvent
from appealflow.models.columns import utcnow
from appealflow.models.db import session_scope
from appealflow.models.department import Category, Department
from appealflow.models.enums import OVERSIGHT_ROLES, AppealStatus
from appealflow.models.escalation import Escalation
from appealflow.models.supervision import FORMULAS, department_figures
from appealflow.settings import get_settings

router = APIRouter(include_in_schema=False)
PLOTLY = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
WEEKS = 8
DAYS = 14


@router.get("/static/vendor/plotly.min.js")
def plotly_js():
    """Plotly's own build, from the `plotly` package installed from PyPI (no CDN)."""
    return FileResponse(PLOTLY, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})


def _overall(rows: list[dict]) -> dict:
    """The rates of all departments together, from the counts the rates endpoint gives."""
    total = {key: sum(row.get(key) or 0 for row in rows) for key in (
        "dispatched", "responded_on_time", "rated", "solved", "satisfied", "replied", "replied_on_time", "open_late")}

    def ratio(part: str, whole: int) -> float | None:
        return round(total[part] / whole, 4) if whole else None

    return {"response_rate": ratio("responded_on_time", total["dispatched"]),
            "resolution_rate": ratio("solved", total["rated"]),
            "satisfaction_rate": ratio("satisfied", total["rated"]),
            "on_time_rate": ratio("replied_on_time", total["replied"] + total["open_late"])}


def _day_starts(days: int, zone: ZoneInfo, now: datetime) -> list[datetime]:
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def _history(now: datetime) -> dict:
    """Backlog at the end of each of the last days, and breaches by department in the last 30 days."""
    zone = ZoneInfo(get_settings().timezone)
    ends = [min(day + timedelta(days=1), now) for day in _day_starts(DAYS, zone, now)]
    with session_scope(get_settings().sqlalchemy_url) as session:
        first_reply = (select(col(AppealEvent.appeal_id), func.min(AppealEvent.at).label("at"))
                       .where(col(AppealEvent.kind).in_(["reply", "return", "return_to_supervisor", "merge",
                                                    "invalidate"]))
                       .group_by(col(AppealEvent.appeal_id)).subquery())
        rows = session.execute(select(col(Appeal.dispatched_at), first_reply.c.at)
                               .outerjoin(first_reply, first_reply.c.appeal_id == Appeal.id)
                               .where(col(Appeal.dispatched_at).is_not(None), col(Appeal.dispatched_at) < ends[-1])
                               .where((first_reply.c.at.is_(None)) | (first_reply.c.at >= ends[0] - timedelta(days=1)))
                               ).all()
        backlog = [sum(1 for dispatched, done in rows if dispatched < end and (done is None or done >= end))
                   for end in ends]
        breaches = session.execute(
            select(col(Appeal.department_code), func.count()).select_from(Escalation)
            .join(Appeal, col(Appeal.id) == col(Escalation.appeal_id))
            .where(col(Escalation.tier) == "breach", col(Escalation.fired_at) >= now - timedelta(days=30))
            .group_by(Appeal.department_code)).all()
        names = {d.code: {"name_zh": d.name_zh, "name_en": d.name_en}
                 for d in session.execute(select(Department)).scalars()}
    days = [f"{day:%m-%d}" for day in _day_starts(DAYS, zone, now)]
    return {"backlog": {"days": days, "open": backlog},
            "breaches": [{"department": code or "-", "count": n} for code, n in breaches], "names": names}


async def dashboard_figures(request: Request) -> dict:
    api = api_for(request)
    now = utcnow()
    zone = ZoneInfo(get_settings().timezone)
    week_ends = [now - timedelta(weeks=WEEKS - 1 - i) for i in range(WEEKS)]
    calls = [api.get("/supervision/rates"), api.get("/supervision/overdue"), api.get("/supervision/at-risk"),
             api.get("/supervision/hot-topics", params={"hours": 72, "min_count": 2}),
             api.get("/supervision/pending")]
    calls += [api.get("/supervision/rates", params={"start": (end - timedelta(weeks=1)).isoformat(),
                                                    "end": end.isoformat()}) for end in week_ends]
    undelivered = any(getattr(r, "path", "") == "/supervision/undelivered" for r in request.app.routes)
    if undelivered:
        calls.append(api.get("/supervision/undelivered"))
    answers = await asyncio.gather(*calls)
    for answer in answers:
        answer.raise_for_status()
    rates, overdue, risky, hot, pending = (a.json() for a in answers[:5])
    weekly = [_overall(a.json()["rows"]) for a in answers[5:5 + WEEKS]]
    history = await run_in_threadpool(_history, now)
    return {
        "at": now.isoformat(), "zone": get_settings().timezone, "rates": rates["rows"], "formulas": FORMULAS,
        "overdue": overdue["rows"],
        "at_risk": risky["rows"], "hot_topics": hot["rows"], "pending": pending,
        "undelivered": answers[-1].json().get("rows", []) if undelivered else [],
        "trend": {"weeks": [f"{e.astimezone(zone):%m-%d}" for e in week_ends], "rates": weekly},
        **history,
    }


@router.get("/supervise")
async def dashboard(request: Request):
    staff = await current(request)
    if staff is None:
        return sign_in_redirect(request)
    if staff.role not in OVERSIGHT_ROLES:
        return render(request, "not_found.html", {}, staff=staff, status=404)
    figures = _jsonable(await dashboard_figures(request))
    return render(request, "dashboard.html", {"figures": figures, "names": figures["names"], "now": utcnow(),
                                              "words": catalogue(language(request))}, staff=staff)


EXPORTS = ("rates", "overdue", "at-risk", "hot-topics", "undelivered")


@router.get("/supervise/export/{name}.csv")
async def export(request: Request, name: str):
    """The supervision API's CSV, for a browser signed in with the page cookie."""
    staff = await current(request)
    if staff is None:
        return sign_in_redirect(request)
    if name not in EXPORTS or staff.role not in OVERSIGHT_ROLES:
        return render(request, "not_found.html", {}, staff=staff, status=404)
    answer = await api_for(request).get(f"/supervision/{name}", params={"format": "csv"})
    return Response(answer.content, status_code=answer.status_code, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.post("/supervise/undelivered/{notification_id}/retry")
async def retry_undelivered(request: Request, notification_id: Annotated[int, PathParam(ge=1, le=2**62)],
                            csrf: Annotated[str, Form(max_length=200)]):
    """A dead letter sent again, through the supervision API's retry."""
    check_csrf(request, csrf)
    staff = await current(request)
    if staff is None:
        return sign_in_redirect(request)
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


CLOSED_STATES = (AppealStatus.closed, AppealStatus.merged)


def public_figures() -> dict:
    """Totals anyone may read: appeals by theme, how many are answered, the on-time rate, and
    satisfaction by department over the last 30 days. Counts only."""
    now = utcnow()
    with session_scope(get_settings().sqlalchemy_url) as session:
        total = session.execute(select(func.count()).select_from(Appeal)).scalar_one()
        by_status: dict[str, int] = {status: n for status, n in session.execute(
            select(col(Appeal.status), func.count()).group_by(Appeal.status))}
        categories = {c.code: c for c in session.execute(select(Category)).scalars()}
        themes: dict[str, int] = {}
        for code, count in session.execute(
                select(col(Appeal.category_code), func.count()).group_by(Appeal.category_code)):
            category = categories.get(code)
            while category is not None and category.parent_code:
                category = categories.get(category.parent_code)
            key = category.code if category else "-"
            themes[key] = themes.get(key, 0) + count
        rows = department_figures(session, now - timedelta(days=30), now, now)
        departments = {d.code: d for d in session.execute(select(Department)).scalars()}
        return {
            "at": now.astimezone(UTC).isoformat(), "total": total,
            "answered": sum(by_status.get(s, 0) for s in (AppealStatus.replied, AppealStatus.closed)),
            "closed": by_status.get(AppealStatus.closed, 0),
            "open": total - sum(by_status.get(s, 0) for s in (*CLOSED_STATES, AppealStatus.replied)),
            "on_time_rate": _overall(rows)["on_time_rate"], "satisfaction_rate": _overall(rows)["satisfaction_rate"],
            "themes": sorted(({"code": code, "name_zh": categories[code].name_zh if code in categories else "其他",
                               "name_en": categories[code].name_en if code in categories else "Other", "count": n}
                              for code, n in themes.items()), key=lambda t: -t["count"]),
            "departments": [{"code": r["department"], "name_zh": departments[r["department"]].name_zh,
                             "name_en": departments[r["department"]].name_en, "rated": r["rated"],
                             "satisfaction_rate": r["satisfaction_rate"], "on_time_rate": r["on_time_rate"]}
                            for r in rows if r["department"] in departments and (r["rated"] or r["dispatched"])],
            "formulas": {k: FORMULAS[k] for k in ("on_time_rate", "satisfaction_rate")},
        }


@router.get("/open")
async def open_government(request: Request):
    return render(request, "open.html", {"figures": await run_in_threadpool(public_figures)})


@router.get("/open/figures.json")
async def open_figures():
    return JSONResponse(await run_in_threadpool(public_figures), headers={"Cache-Control": "no-store"})
