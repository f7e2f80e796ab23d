"""What a requester does to their own appeal: rate the reply (closing it or reopening it), withdraw
it, add to it; and the sweep that closes replies nobody rated."""

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.lifecycle import Action, IllegalTransition, Transition, apply_transitions
from appealflow.models.appeals.steps import ActionRefused, DepartmentsOf, Effects, Step, release_merged, require
from appealflow.models.city.reference import read_reference
from appealflow.models.clocks.deadlines import reopen_deadlines
from appealflow.models.clocks.escalation import clock_rows, stop_clocks
from appealflow.models.storage.columns import stored_id
from appealflow.models.telling.audience import Event, messages_for, when
from appealflow.models.telling.outbox import write


class AlreadyRated(IllegalTransition):
    """A second rating of the same reply: the first one stands."""

    def __init__(self, appeal: Appeal):
        Exception.__init__(self, "这个答复已经评价过了 / this reply was already rated")
        self.status, self.action, self.version = appeal.status, Action.close, appeal.version


class NothingToRate(IllegalTransition):
    """A rating before there is a reply to rate."""

    def __init__(self, appeal: Appeal):
        Exception.__init__(self, "还没有可评价的答复 / there is no reply to rate yet")
        self.status, self.action, self.version = appeal.status, Action.close, appeal.version


RATING_ACTIONS = (Action.close, Action.reopen, Action.reopen_to_supervisor)


SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")



def _rating(s: Step) -> tuple[dict, dict]:
    if s.given.satisfaction not in SATISFACTION:
        raise ActionRefused("satisfaction", f"one of {', '.join(SATISFACTION)}")
    if s.given.solved is None:
        raise ActionRefused("solved", "say whether the matter was solved")
    detail = {"solved": s.given.solved, "satisfaction": s.given.satisfaction}
    if s.given.text:
        detail["comment"] = s.given.text
    return ({"rated_solved": s.given.solved, "rated_satisfaction": s.given.satisfaction, "rated_at": s.now},
            detail)


def rate(s: Step) -> Effects:
    """Rated satisfied or basically so: closed."""
    changes, detail = _rating(s)
    return Effects(changes, detail, s.tell(Event.closed, satisfaction=s.given.satisfaction))


def reopen(s: Step) -> Effects:
    """重办: back to the department that replied, tagged as reopened (reopen_count), with the reopen
    policy's deadlines from now."""
    changes, detail = _rating(s)
    ref = read_reference(s.session)
    lineage = ref.catalogue.lineage(s.appeal.category_code) if s.appeal.category_code else []
    deadlines = reopen_deadlines(ref.policies, s.appeal.appeal_type, s.appeal.priority, lineage, s.now, s.calendar)
    changes |= {"reopen_count": s.appeal.reopen_count + 1, "replied_at": None,
                "dispatched_at": s.now, "paused_at": None, "accept_due_at": deadlines.accept_due_at,
                "contact_due_at": deadlines.contact_due_at, "resolve_due_at": deadlines.resolve_due_at}
    detail |= {"department": s.appeal.department_code, "resolve_due_at": deadlines.resolve_due_at.isoformat()}
    return Effects(changes, detail, s.tell(Event.reopened, accept_due=when(deadlines.accept_due_at),
                                           resolve_due=when(deadlines.resolve_due_at)),
                   clocks=clock_rows(s.appeal_id, deadlines, s.now, s.calendar))


def reopen_to_supervisor(s: Step) -> Effects:
    """Unsatisfied again after a reopening: a supervisor looks at it."""
    changes, detail = _rating(s)
    changes |= {"reopen_count": s.appeal.reopen_count + 1, "replied_at": None}
    return Effects(changes, detail | {"department": s.appeal.department_code},
                   s.tell(Event.reopened_to_supervisor))


def withdraw(s: Step) -> Effects:
    """The requester no longer wants an answer."""
    reason = (s.given.reason or "").strip()
    # Only this appeal's requester: the requesters of appeals merged into it still want an answer.
    release_merged(s)
    told = messages_for(Event.withdrawn, s.appeal, key=s.key, departments=s.departments,
                        facts={"reason": reason or "-"})
    return Effects({"paused_at": None}, {"reason": reason} if reason else {}, told)


def add_information(s: Step) -> Effects:
    """The requester adds to what they wrote."""
    information = require(s.given.text, "text", "say what to add")
    return Effects({}, {"information": information}, s.tell(Event.information_added))


def close_unrated(session: Session, *, now: datetime, older_than, limit: int = 500) -> int:
    """Close, as not rated, replied appeals whose requester did not rate within `older_than`; the
    caller commits. Guarded like every transition, so a sweep beside a late rating closes once."""
    due = session.execute(select(Appeal).where(
        col(Appeal.status) == AppealStatus.replied, col(Appeal.replied_at).is_not(None),
        col(Appeal.replied_at) <= now - older_than)
        .order_by(col(Appeal.replied_at)).limit(limit)).scalars().all()
    transitions, told = [], {}
    departments = DepartmentsOf(session)
    for appeal in due:
        transitions.append(Transition(stored_id(appeal), appeal.version, appeal.status, Action.close, "system:rating",
                                      {"replied_at": None}, {"rated": False}))
        followers = session.execute(select(Appeal).where(col(Appeal.parent_id) == appeal.id,
                                                         col(Appeal.status) == AppealStatus.merged)).scalars().all()
        told[appeal.id] = messages_for(Event.closed, appeal, key=f"v{appeal.version}", departments=departments,
                                       facts={"satisfaction": "not_rated"}, followers=followers)
    applied = apply_transitions(session, transitions, now=now)
    write(session, [m for t in applied for m in told[t.appeal_id]], now=now)
    for t in applied:
        stop_clocks(session, t.appeal_id)
    return len(applied)
