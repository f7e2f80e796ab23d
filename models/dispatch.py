"""Dispatch (派单): claim waiting appeals, decide where each goes, record it with its notifications.

Deciding is pure and per appeal, so one bad appeal fails alone; recording is guarded in SQL, so a
batch recorded twice dispatches and notifies once.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, or_, select, update
from sqlmodel import Session

from appealflow.models.appeal import Appeal, AppealAssist
from appealflow.models.audience import Event, Message, messages_for, when
from appealflow.models.deadlines import Calendar, Deadlines, deadlines_for, policy_for
from appealflow.models.enums import AppealStatus
from appealflow.models.escalation import clock_rows, start_clocks
from appealflow.models.lifecycle import Action, Transition, apply_transitions
from appealflow.models.outbox import write
from appealflow.models.reference import Reference

log = logging.getLogger(__name__)
ACTOR = "system:dispatch"


@dataclass(frozen=True)
class Decision:
    appeal_id: int
    version: int
    code: str
    action: Action  # route or triage
    category_code: str | None
    confidence: float
    reason: str
    department_code: str | None = None
    assisting: tuple[str, ...] = ()
    deadlines: Deadlines | None = None


@dataclass
class DispatchSummary:
    dispatched: int = 0
    triaged: int = 0
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)
    notifications: int = 0


def _claimable(now: datetime):
    """Received, and held by no live worker: a claim past its lease belongs to a dead one."""
    return and_(Appeal.status == AppealStatus.received,
                or_(Appeal.claimed_until.is_(None), Appeal.claimed_until < now))


def claim_waiting(session: Session, *, limit: int, lease: timedelta, now: datetime) -> list[int]:
    """Claim up to `limit` received appeals no live worker holds; a dead worker's claim lapses."""
    waiting = (
        select(Appeal.id)
        .where(_claimable(now))
        .order_by(Appeal.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.execute(
        update(Appeal)
        .where(Appeal.id.in_(waiting.scalar_subquery()))
        .values(claimed_until=now + lease)
        .returning(Appeal.id)
        .execution_options(synchronize_session=False)
    ).scalars())


def has_waiting(session: Session, *, now: datetime) -> bool:
    return session.execute(
        select(Appeal.id)
        .where(_claimable(now))
        .limit(1)
    ).first() is not None


def decide(appeal: Appeal, ref: Reference, *, calendar: Calendar, min_confidence: float) -> Decision:
    """Where one appeal goes, with its deadlines, or triage when that is not certain enough."""
    catalogue = ref.catalogue
    found = catalogue.classify(appeal.title, appeal.text, appeal.category_code)
    common = dict(appeal_id=appeal.id, version=appeal.version, code=appeal.code,
                  category_code=found.category_code, confidence=found.confidence)
    if found.category_code is None or found.confidence < min_confidence:
        return Decision(**common, action=Action.triage, reason=f"unsure of category: {found.reason}")
    route = catalogue.route(found.category_code, appeal.district, appeal.street)
    if route is None:
        return Decision(**common, action=Action.triage,
                        reason=f"{found.reason}; no catalogue rule for {found.category_code}")
    policy = policy_for(ref.policies, appeal.appeal_type, appeal.priority, catalogue.lineage(found.category_code))
    return Decision(**common, action=Action.route, reason=f"{found.reason}; {route.reason}",
                    department_code=route.department_code, assisting=route.assisting,
                    deadlines=deadlines_for(policy, appeal.received_at, calendar))


def decide_all(appeals: list[Appeal], ref: Reference, *, calendar: Calendar,
               min_confidence: float) -> tuple[list[Decision], list[str]]:
    """Decisions for a batch; an appeal whose decision raises is left for the next attempt."""
    decisions, failed = [], []
    for appeal in appeals:
        try:
            decisions.append(decide(appeal, ref, calendar=calendar, min_confidence=min_confidence))
        except Exception:
            log.exception("dispatch decision failed", extra={"appeal": appeal.code})
            failed.append(appeal.code)
    return decisions, failed


def load_claimed(session: Session, ids: list[int]) -> list[Appeal]:
    return list(session.execute(
        select(Appeal).where(Appeal.id.in_(ids), Appeal.status == AppealStatus.received).order_by(Appeal.id)
    ).scalars())


def record(session: Session, decisions: list[Decision], appeals: dict[int, Appeal], ref: Reference,
           *, now: datetime) -> DispatchSummary:
    """Apply the decisions that still hold, with their assisting departments and outbox rows."""
    transitions = [_transition(d, now) for d in decisions]
    applied = {t.appeal_id for t in apply_transitions(session, transitions, now=now)}
    summary = DispatchSummary(unchanged=len(decisions) - len(applied))
    assists: list[dict] = []
    outbox: list[Message] = []
    for d in decisions:
        if d.appeal_id not in applied:
            continue
        if d.action == Action.route:
            summary.dispatched += 1
        else:
            summary.triaged += 1
        assists += [dict(appeal_id=d.appeal_id, department_code=c) for c in d.assisting]
        outbox += _messages(d, appeals[d.appeal_id], ref)
    if assists:
        session.execute(insert(AppealAssist), assists)
    start_clocks(session, [row for d in decisions if d.appeal_id in applied and d.deadlines
                           for row in clock_rows(d.appeal_id, d.deadlines, appeals[d.appeal_id].received_at,
                                                 ref.calendar)])
    summary.notifications = write(session, outbox, now=now)
    return summary


def _transition(d: Decision, now: datetime) -> Transition:
    changes: dict = dict(category_code=d.category_code, routing_confidence=round(d.confidence, 3),
                         routing_reason=d.reason[:500], claimed_until=None)
    detail: dict = {"reason": d.reason, "category": d.category_code}
    if d.action == Action.route and d.deadlines:
        changes.update(department_code=d.department_code, dispatched_at=now,
                       accept_due_at=d.deadlines.accept_due_at, contact_due_at=d.deadlines.contact_due_at,
                       resolve_due_at=d.deadlines.resolve_due_at)
        detail.update(department=d.department_code, assisting=list(d.assisting),
                      resolve_due_at=d.deadlines.resolve_due_at.isoformat())
    return Transition(d.appeal_id, d.version, AppealStatus.received, d.action, ACTOR, changes, detail)


def _messages(d: Decision, appeal: Appeal, ref: Reference) -> list[Message]:
    key = f"v{d.version}"
    if d.action == Action.triage:
        return messages_for(Event.triaged, appeal, key=key, departments=ref.departments)
    assert d.deadlines and d.department_code
    return messages_for(Event.dispatched, appeal, key=key, departments=ref.departments, handling=d.department_code,
                        assisting=d.assisting, facts=dispatch_facts(d.category_code, d.deadlines))


def dispatch_facts(category_code: str | None, deadlines: Deadlines) -> dict:
    return dict(category=category_code or "-", accept_due=when(deadlines.accept_due_at),
                resolve_due=when(deadlines.resolve_due_at))
