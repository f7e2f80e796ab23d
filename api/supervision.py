"""Supervisors: overdue and at-risk lists, the three rates and the rest, hot topics, decisions to
make. Every table also comes as CSV (`?format=csv`). No personal data appears here."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from appealflow.api.auth import current_staff
from appealflow.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from appealflow.api.exports import csv_response, xlsx_response
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import OVERSIGHT_ROLES
from appealflow.models.appeals.lifecycle import NotPermitted
from appealflow.models.city.people import Staff
from appealflow.models.oversight.export_words import ReaderNames, readable
from appealflow.models.oversight.orders import MAX_APPEALS, issue, order_figures, order_view
from appealflow.models.oversight.routing_quality import routing_quality
from appealflow.models.oversight.supervision import (
    FORMULAS,
    MEASURES,
    Scope,
    appeals_behind,
    at_risk,
    department_figures,
    hot_topics,
    overdue,
    pending_decisions,
    pending_rows,
)
from appealflow.models.storage.columns import utcnow
from appealflow.models.telling.outbox import attempts_of, retry, undelivered
from appealflow.settings import get_settings
from appealflow.workers.queues import DELIVERY

Format = Annotated[Literal["json", "csv", "xlsx"], Query(description=(
    "json; or a file for a spreadsheet, csv (UTF-8 with a byte-order mark) or xlsx, headed and named in `lang`"))]
Lang = Annotated[Literal["zh", "en"], Query(description="the files' language (headers, names)")]


def supervisor(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    if staff.role not in OVERSIGHT_ROLES:
        raise NotPermitted(staff.role, "read the supervision figures")
    return staff


router = APIRouter(prefix="/supervision", tags=["supervision"], dependencies=[Depends(supervisor)])


Filter = Annotated[str | None, Query(max_length=60, pattern=r"^[a-z0-9_]+$")]


def _table(rows: list[dict], fmt: str, name: str, session: Session, lang: str, **extra):
    if fmt == "json":
        return {"rows": rows, **extra}
    shown = readable(rows, ReaderNames.read(session), lang, get_settings().timezone)
    return csv_response(shown, name) if fmt == "csv" else xlsx_response(shown, name)


def _listing(appeals: list[Appeal], now: datetime) -> list[dict]:
    return [dict(code=a.code, status=a.status, department=a.department_code, category=a.category_code,
                 title=a.title, resolve_due_at=a.resolve_due_at.isoformat() if a.resolve_due_at else None,
                 hours_late=round((now - a.resolve_due_at).total_seconds() / 3600, 1)
                 if a.resolve_due_at and a.resolve_due_at < now else 0, reopened=a.reopen_count > 0)
            for a in appeals]


@router.get("/overdue")
def overdue_list(session: SessionDep, district: Filter = None, department: Filter = None, category: Filter = None,
                 format: Format = "json", lang: Lang = "zh"):
    now = utcnow()
    found = overdue(session, now, Scope(district, department, category))
    return _table(_listing(found, now), format, "overdue", session, lang)


@router.get("/at-risk")
def at_risk_list(session: SessionDep, district: Filter = None, department: Filter = None, category: Filter = None,
                 format: Format = "json", lang: Lang = "zh"):
    now = utcnow()
    found = at_risk(session, now, Scope(district, department, category))
    return _table(_listing(found, now), format, "at-risk", session, lang)


Moment = Annotated[str | None, Query(max_length=40, description=(
    "a date (the city's local day: 2026-11-01) or a time (2026-11-01T08:00:00+08:00); a time without "
    "a zone is the city's local time"))]


def _moment(text: str | None, field: str, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A date is the city's local day (as an end, the whole day is included); a time without a zone is
    local time."""
    if text is None:
        return None
    try:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            moment = datetime.fromisoformat(text)
        else:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), zone)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise RequestValidationError([{"loc": ("query", field), "type": "value_error", "msg": (
            "expected a date like 2026-11-01 or a time like 2026-11-01T08:00:00+08:00")}]) from None


def _period(settings, start: str | None, end: str | None, now) -> tuple:
    zone = ZoneInfo(settings.timezone)
    until = _moment(end, "end", zone, end=True) or now
    since = _moment(start, "start", zone, end=False) or until - timedelta(days=30)
    if since >= until:
        raise RequestValidationError([{"loc": ("query", "start"), "type": "value_error",
                                       "msg": "start must be before end"}])
    return since, until


@router.get("/rates")
def rates(session: SessionDep, settings: SettingsDep, start: Moment = None, end: Moment = None,
          district: Filter = None, department: Filter = None, category: Filter = None,
          format: Format = "json", lang: Lang = "zh"):
    """Per department: the three rates, on-time, return and reopen rates, backlog; formulas alongside.
    Dates are the city's local days; `end` is included. `district`, `department` and `category` (with
    the categories under it) narrow which appeals count."""
    now = utcnow()
    since, until = _period(settings, start, end, now)
    scope = Scope(district, department, category)
    return _table(department_figures(session, since, until, now, scope), format, "rates", session, lang,
                  start=since, end=until, formulas=FORMULAS)


@router.get("/routing-quality")
def routing_quality_figures(session: SessionDep, settings: SettingsDep, start: Moment = None, end: Moment = None):
    """How routing did on the appeals received in the period (default the last 30 days): per category,
    department and model version, the share placed automatically, sent to triage, and of those placed
    the share returned, dispatched again or merged afterwards; with every model version's figures."""
    now = utcnow()
    since, until = _period(settings, start, end, now)
    return {"start": since, "end": until, **routing_quality(session, since, until)}


@router.get("/appeals")
def appeals_behind_a_figure(session: SessionDep, settings: SettingsDep,
                            measure: Annotated[Literal[MEASURES], Query(description="the figure clicked")],  # type: ignore[valid-type]
                            start: Moment = None, end: Moment = None, district: Filter = None,
                            department: Filter = None, category: Filter = None, format: Format = "json",
                            lang: Lang = "zh"):
    """The appeals a figure of /rates counts, with the same period and filters (a rate: its
    denominator's appeals)."""
    now = utcnow()
    since, until = _period(settings, start, end, now)
    found = appeals_behind(session, measure, Scope(district, department, category), since, until, now)
    return _table(_listing(found, now), format, f"appeals-{measure}", session, lang, start=since, end=until)


@router.get("/hot-topics")
def hot_topic_list(session: SessionDep, hours: Annotated[int, Query(ge=1, le=24 * 90)] = 72,
                   min_count: Annotated[int, Query(ge=2, le=1_000_000)] = 5, format: Format = "json",
                   lang: Lang = "zh"):
    return _table(hot_topics(session, utcnow(), hours=hours, min_count=min_count), format, "hot-topics", session, lang)


@router.get("/pending")
def pending(session: SessionDep, format: Format = "json", lang: Lang = "zh"):
    """Extension requests and disputed returns waiting for a supervisor (as files: one table of both)."""
    found = pending_decisions(session)
    return found if format == "json" else _table(pending_rows(found), format, "pending", session, lang)


@router.get("/undelivered")
def undelivered_list(session: SessionDep, format: Format = "json", lang: Lang = "zh"):
    """Dead letters: messages given up on after their last attempt (or with no way to reach their
    recipient), newest first, with why. Channel and recipient kind only, never an address."""
    return _table(undelivered(session), format, "undelivered", session, lang)


@router.get("/undelivered/{notification_id}/attempts")
def delivery_attempts(session: SessionDep, notification_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> dict:
    return {"rows": [dict(at=a.at.isoformat(), channel=a.channel, result=a.result, error=a.error)
                     for a in attempts_of(session, notification_id)]}


@router.post("/undelivered/{notification_id}/retry")
def retry_undelivered(unit: UnitOfWorkDep, notification_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> dict:
    """Send a dead letter again, with a fresh set of attempts (once the gateway or target is mended)."""
    if not retry(unit.session, notification_id, now=utcnow()):
        raise HTTPException(404, "没有这条未送达消息 / no undelivered message with this id (or it has no target)")
    unit.wake(DELIVERY)
    unit.commit()
    return {"id": notification_id, "status": "pending"}


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: str = Field(max_length=40)
    appeals: list[Annotated[str, Field(max_length=20)]] = Field(min_length=1, max_length=MAX_APPEALS)
    subject: str = Field(min_length=1, max_length=2000)
    due: str = Field(max_length=40, description="a local date (the whole day) or a time, as the filters take it")


@router.post("/orders", status_code=201)
def issue_order(body: OrderIn, unit: UnitOfWorkDep, settings: SettingsDep,
                staff: Annotated[Staff, Depends(supervisor)]) -> dict:
    """A supervision order (督办单) to a department about appeals, with a deadline; each appeal's
    history records it."""
    now = utcnow()
    due = _moment(body.due, "due", ZoneInfo(settings.timezone), end=True)
    assert due is not None
    order = issue(unit.session, staff, department=body.department, codes=body.appeals, subject=body.subject,
                  due_at=due, now=now)
    unit.commit()
    return order_view(order)


@router.get("/orders")
def list_orders(session: SessionDep, settings: SettingsDep, start: Moment = None, end: Moment = None,
                format: Format = "json", lang: Lang = "zh"):
    """Per department: orders issued in the period, answered, answered in time, open past their deadline."""
    now = utcnow()
    since, until = _period(settings, start, end, now)
    return _table(order_figures(session, since, until, now), format, "orders", session, lang, start=since, end=until)
