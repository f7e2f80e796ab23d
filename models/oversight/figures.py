"""Figures a dashboard draws beyond the rates endpoints: all departments' rates together, the
backlog at the end of each recent day with breaches by department, and the totals anyone may read
on the open-government page (counts only)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.city.department import Category, Department
from appealflow.models.clocks.escalation import Escalation
from appealflow.models.oversight.supervision import FORMULAS, department_figures


def overall_rates(rows: list[dict]) -> dict:
    """The rates of all departments together, from the counts the rates endpoint gives."""
    total = {key: sum(row.get(key) or 0 for row in rows) for key in (
        "dispatched", "response_due", "responded_on_time", "rated", "solved", "satisfied", "replied",
        "replied_on_time", "open_late", "with_photos")}

    def ratio(part: str, whole: int) -> float | None:
        return round(total[part] / whole, 4) if whole else None

    return {"response_rate": ratio("responded_on_time", total["response_due"]),
            "resolution_rate": ratio("solved", total["rated"]),
            "satisfaction_rate": ratio("satisfied", total["rated"]),
            "on_time_rate": ratio("replied_on_time", total["replied"] + total["open_late"]),
            "dispatched": total["dispatched"], "with_photos": total["with_photos"]}


def _day_starts(days: int, zone: ZoneInfo, now: datetime) -> list[datetime]:
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def backlog_and_breaches(session: Session, now: datetime, zone: ZoneInfo, days: int) -> dict:
    """Backlog at the end of each of the last days, and breaches by department in the last 30 days."""
    ends = [min(day + timedelta(days=1), now) for day in _day_starts(days, zone, now)]
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
    labels = [f"{day:%m-%d}" for day in _day_starts(days, zone, now)]
    return {"backlog": {"days": labels, "open": backlog},
            "breaches": [{"department": code or "-", "count": n} for code, n in breaches], "names": names}


CLOSED_STATES = (AppealStatus.closed, AppealStatus.merged)


def public_figures(session: Session, now: datetime) -> dict:
    """Totals anyone may read: appeals by theme, how many are answered, the on-time rate, and
    satisfaction by department over the last 30 days. Counts only."""
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
    overall = overall_rates(rows)
    return {
        "at": now.astimezone(UTC).isoformat(), "total": total,
        "answered": sum(by_status.get(s, 0) for s in (AppealStatus.replied, AppealStatus.closed)),
        "closed": by_status.get(AppealStatus.closed, 0),
        "open": total - sum(by_status.get(s, 0) for s in (*CLOSED_STATES, AppealStatus.replied)),
        "on_time_rate": overall["on_time_rate"], "satisfaction_rate": overall["satisfaction_rate"],
        # Of the last 30 days' dispatched appeals, how many came with a photo: a count, nothing of the photos.
        "dispatched_30d": overall["dispatched"], "with_photos_30d": overall["with_photos"],
        "themes": sorted(({"code": code, "name_zh": categories[code].name_zh if code in categories else "其他",
                           "name_en": categories[code].name_en if code in categories else "Other", "count": n}
                          for code, n in themes.items()), key=lambda t: -t["count"]),
        "departments": [{"code": r["department"], "name_zh": departments[r["department"]].name_zh,
                         "name_en": departments[r["department"]].name_en, "rated": r["rated"],
                         "satisfaction_rate": r["satisfaction_rate"], "on_time_rate": r["on_time_rate"]}
                        for r in rows if r["department"] in departments and (r["rated"] or r["dispatched"])],
        "formulas": {k: FORMULAS[k] for k in ("on_time_rate", "satisfaction_rate", "with_photos")},
    }
