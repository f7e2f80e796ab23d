"""What supervisors measure: the three rates and the rest, per department and period; overdue and
at-risk lists; hot topics; what waits for a supervisor's decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select, true
from sqlmodel import Session, col

from appealflow.models.appeals.appeal import Appeal, AppealEvent, ExtensionRequest
from appealflow.models.appeals.enums import CONTENT, AppealStatus, ClockState, ExtensionStatus
from appealflow.models.appeals.lifecycle import OPEN
from appealflow.models.city.reference import read_catalogue
from appealflow.models.clocks.deadlines import is_overdue, overdue_condition
from appealflow.models.clocks.escalation import DeadlineClock, Tier
from appealflow.models.files.attachments import Attachment, requesters_photo

FORMULAS = {
    "response_rate": "appeals accepted by the accept deadline and first contacted by the contact deadline "
                     "/ appeals dispatched in the period whose response was due (accepted, or past the accept "
                     "deadline)",
    "resolution_rate": "ratings saying solved / ratings given in the period",
    "satisfaction_rate": "(satisfied + basically satisfied) / ratings given in the period",
    "on_time_rate": "appeals dispatched in the period and replied by the resolve deadline / (those replied + "
                    "those overdue now: open, past the resolve deadline, not waiting on the requester)",
    "return_rate": "returns in the period / appeals dispatched in the period",
    "reopen_rate": "reopenings in the period / replies in the period",
    "anonymous": "appeals dispatched in the period with no contact (no message goes to the requester, "
                 "so none is rated)",
    "with_photos": "appeals dispatched in the period that came with a photo from the requester (at filing or "
                   "added later)",
    "backlog": "open appeals now (dispatched, accepted, in progress, waiting on the requester)",
    "overdue": "open appeals now past their resolve deadline and not waiting on the requester",
}


def ratio(part: int, whole: int) -> float | None:
    """A rate to four places; None (shown "—") when nothing is there to count, never a 0%."""
    return round(part / whole, 4) if whole else None


@dataclass
class DepartmentFigures:
    department: str
    dispatched: int = 0
    # Dispatched and accepted, or past the accept deadline: an appeal dispatched minutes ago is not yet
    # a late response, and a department with only such appeals has no response rate ("—"), not 0%.
    response_due: int = 0
    anonymous: int = 0  # of those dispatched: no contact, so never rated; counted apart
    with_photos: int = 0  # of those dispatched: the requester sent a photo
    responded_on_time: int = 0
    rated: int = 0
    solved: int = 0
    satisfied: int = 0
    replied: int = 0
    replied_on_time: int = 0
    open_late: int = 0
    returns: int = 0
    reopens: int = 0
    replies_in_period: int = 0
    backlog: int = 0
    overdue: int = 0

    def rates(self) -> dict:
        return {
            **asdict(self),
            "response_rate": ratio(self.responded_on_time, self.response_due),
            "resolution_rate": ratio(self.solved, self.rated),
            "satisfaction_rate": ratio(self.satisfied, self.rated),
            "on_time_rate": ratio(self.replied_on_time, self.replied + self.open_late),
            "return_rate": ratio(self.returns, self.dispatched),
            "reopen_rate": ratio(self.reopens, self.replies_in_period),
        }


@dataclass(frozen=True)
class Scope:
    """Which appeals a supervisor's figures count: a district, a department, a category (with the
    categories under it); None counts all."""

    district: str | None = None
    department: str | None = None
    category: str | None = None

    def condition(self, session: Session, *, by_department: bool = True):
        """As a WHERE clause on the appeal (`by_department=False`: leave the department to the caller)."""
        found = []
        if self.district:
            found.append(col(Appeal.district) == self.district)
        if self.department and by_department:
            found.append(col(Appeal.department_code) == self.department)
        if self.category:
            catalogue = read_catalogue(session)
            family = [c for c in catalogue.categories if self.category in catalogue.lineage(c)]
            found.append(col(Appeal.category_code).in_(family or [self.category]))
        return and_(true(), *found)


EVERYTHING = Scope()


def department_figures(session: Session, start: datetime, end: datetime, now: datetime,
                       scope: Scope = EVERYTHING) -> list[dict]:
    """Every department's figures for appeals dispatched (or rated, returned...) in [start, end), of
    the appeals in `scope`."""
    figures: dict[str, DepartmentFigures] = {}
    within = scope.condition(session)

    def of(code: str) -> DepartmentFigures:
        return figures.setdefault(code, DepartmentFigures(code))

    in_period = lambda column: and_(column >= start, column < end)  # noqa: E731
    dispatched = session.execute(select(
        col(Appeal.id), col(Appeal.department_code), col(Appeal.status), col(Appeal.accept_due_at),
        col(Appeal.contact_due_at), col(Appeal.resolve_due_at), col(Appeal.paused_at), col(Appeal.anonymous))
        .where(in_period(col(Appeal.dispatched_at)), col(Appeal.department_code).is_not(None), within)).all()
    firsts: dict[tuple[int, str], datetime] = {}
    ids = [row.id for row in dispatched]
    pictured: set[int] = set()
    for chunk in range(0, len(ids), 5000):
        pictured.update(session.execute(select(col(Attachment.appeal_id)).distinct().where(
            col(Attachment.appeal_id).in_(ids[chunk:chunk + 5000]), requesters_photo())).scalars())
        for appeal_id, kind, at in session.execute(
                select(col(AppealEvent.appeal_id), col(AppealEvent.kind), func.min(col(AppealEvent.at)))
                .where(col(AppealEvent.appeal_id).in_(ids[chunk:chunk + 5000]),
                       col(AppealEvent.kind).in_(["accept", "contact", "reply"]))
                .group_by(col(AppealEvent.appeal_id), col(AppealEvent.kind))):
            firsts[(appeal_id, kind)] = at
    for row in dispatched:
        f = of(row.department_code)
        f.dispatched += 1
        f.anonymous += bool(row.anonymous)
        f.with_photos += row.id in pictured
        accepted, contacted, replied = (firsts.get((row.id, k)) for k in ("accept", "contact", "reply"))
        if accepted or row.accept_due_at is None or row.accept_due_at <= now:
            f.response_due += 1
        if accepted and accepted <= row.accept_due_at and (
                row.contact_due_at is None or (contacted and contacted <= row.contact_due_at)):
            f.responded_on_time += 1
        if replied:
            f.replied += 1
            f.replied_on_time += replied <= row.resolve_due_at
        elif is_overdue(row, now):
            f.open_late += 1
    for department, solved, satisfaction in session.execute(select(
            col(Appeal.department_code), col(Appeal.rated_solved), col(Appeal.rated_satisfaction))
            .where(in_period(col(Appeal.rated_at)), col(Appeal.department_code).is_not(None), within)):
        f = of(department)
        f.rated += 1
        f.solved += bool(solved)
        f.satisfied += satisfaction in CONTENT
    for detail in session.execute(select(col(AppealEvent.detail))
                                  .join(Appeal, col(Appeal.id) == col(AppealEvent.appeal_id))
                                  .where(in_period(col(AppealEvent.at)),
                                         col(AppealEvent.kind).in_(["return", "return_to_supervisor"]),
                                         scope.condition(session, by_department=False))).scalars():
        if detail.get("department") and scope.department in (None, detail["department"]):
            of(detail["department"]).returns += 1  # a return leaves the appeal with no department: by the event
    for department, kind, count in session.execute(
            select(col(Appeal.department_code), col(AppealEvent.kind), func.count())
            .join(Appeal, col(Appeal.id) == col(AppealEvent.appeal_id))
            .where(in_period(col(AppealEvent.at)), col(AppealEvent.kind).in_(["reopen", "reply"]),
                   col(Appeal.department_code).is_not(None), within)
            .group_by(col(Appeal.department_code), col(AppealEvent.kind))):
        if kind == "reopen":
            of(department).reopens += count
        else:
            of(department).replies_in_period += count
    for department, backlog, overdue in session.execute(
            select(col(Appeal.department_code), func.count(),
                   func.sum(case((overdue_condition(now), 1), else_=0)))
            .where(col(Appeal.status).in_(OPEN), within).group_by(col(Appeal.department_code))):
        f = of(department)
        f.backlog, f.overdue = backlog, int(overdue or 0)
    return [figures[code].rates() for code in sorted(figures)]


# The appeals behind each figure a supervisor can click: the rates link to their denominator.
MEASURES = ("dispatched", "anonymous", "with_photos", "backlog", "overdue", "rated", "reopens")


def appeals_behind(session: Session, measure: str, scope: Scope, start: datetime, end: datetime, now: datetime,
                   limit: int = 500) -> list[Appeal]:
    """The appeals a figure counts, as `department_figures` counts them; most pressing first."""
    if measure not in MEASURES:
        raise ValueError(f"no such figure: {measure}")
    period = lambda column: and_(column >= start, column < end)  # noqa: E731
    where = {
        "dispatched": period(col(Appeal.dispatched_at)),
        "anonymous": and_(period(col(Appeal.dispatched_at)), col(Appeal.anonymous).is_(True)),
        "with_photos": and_(period(col(Appeal.dispatched_at)), col(Appeal.id).in_(
            select(col(Attachment.appeal_id)).where(requesters_photo()))),
        "backlog": col(Appeal.status).in_(OPEN),
        "overdue": overdue_condition(now),
        "rated": period(col(Appeal.rated_at)),
        "reopens": col(Appeal.id).in_(select(col(AppealEvent.appeal_id)).where(
            col(AppealEvent.kind) == "reopen", period(col(AppealEvent.at)))),
    }[measure]
    return list(session.execute(
        select(Appeal).where(where, col(Appeal.department_code).is_not(None), scope.condition(session))
        .order_by(col(Appeal.resolve_due_at).is_(None), col(Appeal.resolve_due_at), col(Appeal.id))
        .limit(limit)).scalars())


def overdue(session: Session, now: datetime, scope: Scope = EVERYTHING, limit: int = 500) -> list[Appeal]:
    return list(session.execute(select(Appeal).where(overdue_condition(now), scope.condition(session))
                                .order_by(col(Appeal.resolve_due_at)).limit(limit)).scalars())


def at_risk(session: Session, now: datetime, scope: Scope = EVERYTHING, limit: int = 500) -> list[Appeal]:
    """Open appeals whose resolve clock has warned but not yet breached."""
    warned = select(col(DeadlineClock.appeal_id)).where(col(DeadlineClock.clock) == "resolve",
                                                        col(DeadlineClock.state) == ClockState.running,
                                                        col(DeadlineClock.next_tier) == Tier.breach)
    return list(session.execute(select(Appeal).where(col(Appeal.id).in_(warned), col(Appeal.status).in_(OPEN),
                                                     scope.condition(session))
                                .order_by(col(Appeal.resolve_due_at)).limit(limit)).scalars())


def hot_topics(session: Session, now: datetime, *, hours: int, min_count: int) -> list[dict]:
    """Many appeals on one category and place in a short time: candidates for acting before a complaint."""
    rows = session.execute(
        select(col(Appeal.category_code), col(Appeal.district), col(Appeal.street), func.count(),
               func.min(col(Appeal.received_at)), func.max(col(Appeal.received_at)))
        .where(col(Appeal.received_at) >= now - timedelta(hours=hours), col(Appeal.category_code).is_not(None))
        .group_by(col(Appeal.category_code), col(Appeal.district), col(Appeal.street))
        .having(func.count() >= min_count).order_by(func.count().desc())).all()
    return [dict(category=c, district=d, street=s, appeals=n, first=first, last=last)
            for c, d, s, n, first, last in rows]


def pending_rows(pending: dict) -> list[dict]:
    """The two lists of `pending_decisions` as one table, for a spreadsheet."""
    return ([dict(kind="extension", appeal=e["appeal"], extra=e["extra"], reason=e["reason"],
                  since=e["created_at"]) for e in pending["extensions"]]
            + [dict(kind="disputed_return", appeal=d["appeal"], extra="", reason=d["title"], since=d["since"])
               for d in pending["disputed_returns"]])


def pending_decisions(session: Session) -> dict:
    extensions = session.execute(
        select(ExtensionRequest, col(Appeal.code)).join(Appeal, col(Appeal.id) == col(ExtensionRequest.appeal_id))
        .where(col(ExtensionRequest.status) == ExtensionStatus.pending).order_by(col(ExtensionRequest.id))).all()
    disputed = session.execute(select(Appeal).where(col(Appeal.status) == AppealStatus.arbitration)
                               .order_by(col(Appeal.updated_at))).scalars().all()
    return {
        "extensions": [dict(id=e.id, appeal=code, extra=e.extra, reason=e.reason, requested_by=e.requested_by,
                            created_at=e.created_at) for e, code in extensions],
        "disputed_returns": [dict(appeal=a.code, title=a.title, returns=a.return_count, since=a.updated_at)
                             for a in disputed],
    }
