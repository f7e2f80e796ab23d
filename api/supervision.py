"""Supervisors: overdue and at-risk lists, the three rates and the rest, hot topics, decisions to
make. Every table also comes as CSV (`?format=csv`). No personal data appears here."""

import csv
import io
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from appealflow.api.auth import current_staff
from appealflow.api.deps import SessionDep
from appealflow.models.appeal import Appeal
from appealflow.models.columns import utcnow
from appealflow.models.enums import Role
from appealflow.models.lifecycle import NotPermitted
from appealflow.models.people import Staff
from appealflow.models.supervision import FORMULAS, at_risk, department_figures, hot_topics, overdue, pending_decisions

Format = Annotated[Literal["json", "csv"], Query()]


def supervisor(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    if staff.role not in (Role.supervisor, Role.admin):
        raise NotPermitted(staff.role, "read the supervision figures")
    return staff


router = APIRouter(prefix="/supervision", tags=["supervision"], dependencies=[Depends(supervisor)])


def _table(rows: list[dict], fmt: str, name: str, **extra):
    if fmt == "json":
        return {"rows": rows, **extra}
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


def _listing(appeals: list[Appeal], now: datetime) -> list[dict]:
    return [dict(code=a.code, status=a.status, department=a.department_code, category=a.category_code,
                 title=a.title, resolve_due_at=a.resolve_due_at.isoformat() if a.resolve_due_at else None,
                 hours_late=round((now - a.resolve_due_at).total_seconds() / 3600, 1)
                 if a.resolve_due_at and a.resolve_due_at < now else 0)
            for a in appeals]


@router.get("/overdue")
def overdue_list(session: SessionDep, format: Format = "json"):
    now = utcnow()
    return _table(_listing(overdue(session, now), now), format, "overdue")


@router.get("/at-risk")
def at_risk_list(session: SessionDep, format: Format = "json"):
    now = utcnow()
    return _table(_listing(at_risk(session, now), now), format, "at-risk")


@router.get("/rates")
def rates(session: SessionDep, start: datetime | None = None, end: datetime | None = None, format: Format = "json"):
    """Per department: the three rates, on-time, return and reopen rates, backlog; formulas alongside."""
    now = utcnow()
    end = end or now
    start = start or end - timedelta(days=30)
    return _table(department_figures(session, start, end, now), format, "rates",
                  start=start, end=end, formulas=FORMULAS)


@router.get("/hot-topics")
def hot_topic_list(session: SessionDep, hours: Annotated[int, Query(ge=1, le=24 * 90)] = 72,
                   min_count: Annotated[int, Query(ge=2)] = 5, format: Format = "json"):
    return _table(hot_topics(session, utcnow(), hours=hours, min_count=min_count), format, "hot-topics")


@router.get("/pending")
def pending(session: SessionDep) -> dict:
    """Extension requests and disputed returns waiting for a supervisor."""
    return pending_decisions(session)
