"""Dispatch (派单): claim waiting appeals, decide where each goes, record it with its notifications.

Deciding is pure and per appeal, so one bad appeal fails alone; recording is guarded in SQL, so a
batch recorded twice dispatches and notifies once.
"""

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlmodel import Session, col

from appealflow.models.appeals.appeal import Appeal, AppealAssist, AppealEvent
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.intake import HOLD
from appealflow.models.appeals.lifecycle import Action, Transition, apply_transitions
from appealflow.models.city.names import category_name
from appealflow.models.city.reference import Reference
from appealflow.models.clocks.deadlines import Calendar, Deadlines, deadlines_for, policy_for
from appealflow.models.clocks.escalation import clock_rows, start_clocks
from appealflow.models.files.attachments import attached
from appealflow.models.routing.classifier import CategoryModel, Item, Suggestion, Verdict, appeal_text, judge
from appealflow.models.routing.duplicates import Candidate, Problem, follow_note, twin_to_follow, twins_for_batch
from appealflow.models.routing.vectors import keep_vectors
from appealflow.models.storage.columns import rows_changed, stored_id
from appealflow.models.telling.audience import Event, Message, messages_for, when
from appealflow.models.telling.outbox import write

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
    suggestions: tuple[Suggestion, ...] = ()
    model_version: str | None = None
    twins: tuple[Candidate, ...] = ()  # open appeals probably the same matter (recorded, never merged)
    # The embedding the model decided with, and its embedder: kept when the decision is recorded.
    vector: Any = field(default=None, compare=False, repr=False)
    embedder: str | None = None


@dataclass
class DispatchSummary:
    dispatched: int = 0
    triaged: int = 0
    unchanged: int = 0
    failed: list[str] = field(default_factory=list)
    notifications: int = 0


def _claimable(now: datetime):
    """Received, and held by no live worker: a claim past its lease belongs to a dead one."""
    return and_(col(Appeal.status) == AppealStatus.received,
                or_(col(Appeal.claimed_until).is_(None), col(Appeal.claimed_until) < now))


def claim_waiting(session: Session, *, limit: int, lease: timedelta, now: datetime,
                  worker: str | None = None) -> list[int]:
    """Claim up to `limit` received appeals no live worker holds; a dead worker's claim lapses, or is
    released sooner once the worker is known dead (`release_claims_of`). `worker` names the claimant."""
    # Locked first, then updated: inside one UPDATE, PostgreSQL may rescan a LIMIT ... SKIP LOCKED
    # subquery and claim more than `limit` (models/telling/outbox.py `claim_due` saw it).
    waiting = session.execute(
        select(col(Appeal.id))
        .where(_claimable(now))
        .order_by(col(Appeal.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if not waiting:
        return []
    session.execute(update(Appeal).where(col(Appeal.id).in_(waiting))
                    .values(claimed_until=now + lease, claimed_by=worker)
                    .execution_options(synchronize_session=False))
    return list(waiting)


def claimants(session: Session, *, now: datetime) -> list[str]:
    """The workers holding claims on received appeals that have not lapsed (not an operator's hold
    for an answer on the spot: no worker holds it, and it ends by itself)."""
    return list(session.execute(
        select(col(Appeal.claimed_by)).distinct()
        .where(col(Appeal.status) == AppealStatus.received, col(Appeal.claimed_until) >= now,
               col(Appeal.claimed_by).is_not(None), ~col(Appeal.claimed_by).startswith(HOLD))
    ).scalars())


def release_claims_of(session: Session, workers: list[str]) -> int:
    """Give back the claims of workers known to be dead, without waiting for their leases to lapse:
    a worker killed mid-batch costs the seconds until another notices, not the whole lease."""
    if not workers:
        return 0
    result = session.execute(update(Appeal).where(
        col(Appeal.status) == AppealStatus.received, col(Appeal.claimed_by).in_(workers))
        .values(claimed_until=None, claimed_by=None).execution_options(synchronize_session=False))
    return rows_changed(result) or 0


def has_waiting(session: Session, *, now: datetime) -> bool:
    return session.execute(
        select(col(Appeal.id))
        .where(_claimable(now))
        .limit(1)
    ).first() is not None


def deadlines_of(appeal: Appeal, category_code: str | None, ref: Reference, start: datetime,
                 calendar: Calendar) -> Deadlines:
    """The appeal's deadlines from `start` under the most specific policy for it."""
    lineage = ref.catalogue.lineage(category_code) if category_code else []
    return deadlines_for(policy_for(ref.policies, appeal.appeal_type, appeal.priority, lineage), start, calendar)


def decide(appeal: Appeal, ref: Reference, *, calendar: Calendar, min_confidence: float,
           verdict: Verdict | None = None, model_version: str | None = None) -> Decision:
    """Where one appeal goes, with its deadlines, or triage when that is not certain enough.

    The requester's own category is taken as given. Otherwise the model's verdict decides when there
    is one; without a model the keyword vote does, and a tie between themes is never a decision."""
    catalogue = ref.catalogue
    if appeal.category_code or verdict is None:
        found = catalogue.classify(appeal.title, appeal.text, appeal.category_code)
        common: dict[str, Any] = dict(appeal_id=appeal.id, version=appeal.version, code=appeal.code,
                                      category_code=found.category_code, confidence=found.confidence)
        tie = found.confidence <= 0.5 and not appeal.category_code
        if found.category_code is None or found.confidence < min_confidence or tie:
            return Decision(**common, action=Action.triage, reason=f"rule: unsure of category: {found.reason}")
        route = catalogue.route(found.category_code, appeal.district, appeal.street)
        if route is None:
            return Decision(**common, action=Action.triage,
                            reason=f"rule: {found.reason}; no catalogue rule for {found.category_code}")
        return Decision(**common, action=Action.route, reason=f"rule: {found.reason}; {route.reason}",
                        department_code=route.department_code, assisting=route.assisting,
                        deadlines=deadlines_of(appeal, found.category_code, ref, appeal.received_at, calendar))
    top = verdict.top
    common = dict[str, Any](appeal_id=appeal.id, version=appeal.version, code=appeal.code,
                  category_code=top.category_code if top else None,
                  confidence=top.probability if top else 0.0, suggestions=verdict.suggestions,
                  model_version=model_version)
    if not verdict.decided or top is None:
        listed = "; ".join(f"{s.department_code}/{s.category_code} {s.probability:.0%}" for s in verdict.suggestions)
        return Decision(**common, action=Action.triage,
                        reason=f"model {model_version}: not sure enough, for the dispatcher: {listed or 'nothing'}")
    route = catalogue.route(top.category_code, appeal.district, appeal.street)
    assert route is not None and route.department_code == top.department_code
    return Decision(**common, action=Action.route,
                    reason=f"model {model_version} {top.probability:.0%}: {top.why}; {route.reason}",
                    department_code=route.department_code, assisting=route.assisting,
                    deadlines=deadlines_of(appeal, top.category_code, ref, appeal.received_at, calendar))


def by_hand(appeal: Appeal, ref: Reference, *, department_code: str, assisting: tuple[str, ...], reason: str,
            now: datetime, calendar: Calendar) -> Decision:
    """A dispatcher's decision: the department they name, deadlines counted from now."""
    return Decision(stored_id(appeal), appeal.version, appeal.code, Action.dispatch, appeal.category_code, 1.0, reason,
                    department_code, assisting, deadlines_of(appeal, appeal.category_code, ref, now, calendar))


def placement(d: Decision, now: datetime) -> tuple[dict, dict]:
    """The columns a dispatch sets and what its event records, automatic or by hand alike."""
    assert d.deadlines and d.department_code
    changes = dict(department_code=d.department_code, dispatched_at=now, accept_due_at=d.deadlines.accept_due_at,
                   contact_due_at=d.deadlines.contact_due_at, resolve_due_at=d.deadlines.resolve_due_at)
    detail = dict(department=d.department_code, assisting=list(d.assisting),
                  resolve_due_at=d.deadlines.resolve_due_at.isoformat())
    return changes, detail


def set_assisting(session: Session, appeal_id: int, codes: tuple[str, ...]) -> None:
    """The assisting departments become exactly `codes`: one dropped stops reading the appeal."""
    existing = set(session.execute(select(col(AppealAssist.department_code))
                                   .where(col(AppealAssist.appeal_id) == appeal_id)).scalars())
    wanted = set(codes)
    if existing - wanted:
        session.execute(delete(AppealAssist).where(col(AppealAssist.appeal_id) == appeal_id,
                                                   col(AppealAssist.department_code).in_(existing - wanted)))
    if wanted - existing:
        session.execute(insert(AppealAssist), [dict(appeal_id=appeal_id, department_code=c)
                                               for c in sorted(wanted - existing)])


def decide_all(appeals: list[Appeal], ref: Reference, *, calendar: Calendar, min_confidence: float,
               model: CategoryModel | None = None, embed=None,
               vectors: dict[int, Any] | None = None) -> tuple[list[Decision], list[str]]:
    """Decisions for a batch; an appeal whose decision raises is left for the next attempt.

    With a model, every appeal without a given category is embedded in one call, each distinct text
    once (a burst after one outage repeats the same words many times); the vectors are left in
    `vectors` (by appeal id) for duplicates to reuse."""
    verdicts: dict[int, Verdict] = {}
    if model is not None and embed is not None:
        try:
            verdicts = _verdicts([a for a in appeals if not a.category_code], ref, model, embed, vectors)
        except Exception:
            # The model failing must not stop dispatch: the keyword rules still route or triage.
            log.exception("routing model failed for a batch; keyword rules decide it")
    decisions, failed = [], []
    for appeal in appeals:
        try:
            decision = decide(appeal, ref, calendar=calendar, min_confidence=min_confidence,
                              verdict=verdicts.get(stored_id(appeal)),
                              model_version=model.version if model is not None else None)
            if model is not None and vectors is not None and stored_id(appeal) in vectors:
                decision = replace(decision, vector=vectors[stored_id(appeal)], embedder=model.embedder)
            decisions.append(decision)
        except Exception:
            log.exception("dispatch decision failed", extra={"appeal": appeal.code})
            failed.append(appeal.code)
    return decisions, failed


def _verdicts(appeals: list[Appeal], ref: Reference, model: CategoryModel, embed,
              keep: dict[int, Any] | None = None) -> dict[int, Verdict]:
    if not appeals:
        return {}
    texts = [appeal_text(a.title, a.text) for a in appeals]
    distinct = list(dict.fromkeys(texts))
    vectors = embed(distinct)
    row_of = {t: i for i, t in enumerate(distinct)}
    ordered = vectors[[row_of[t] for t in texts]]
    if keep is not None:
        keep.update((stored_id(a), v) for a, v in zip(appeals, ordered, strict=True))
    items = [Item(a.title, a.text, a.district, a.street, a.priority == "urgent") for a in appeals]
    return {stored_id(a): v for a, v in zip(appeals, judge(model, ref.catalogue, items, ordered), strict=True)}


def problem_of(d: Decision) -> Problem:
    """What routing made of an appeal, as duplicates compare it."""
    top = d.suggestions[0].department_code if d.suggestions else None
    return Problem(d.category_code, tuple(s.category_code for s in d.suggestions), d.department_code or top)


def with_twins(session: Session, appeals: dict[int, Appeal], decisions: list[Decision], ref: Reference, *,
               calendar: Calendar, embed, vectors: dict[int, Any] | None = None,
               embedder: str | None = None) -> list[Decision]:
    """Each decision with the open appeals that are probably the same matter, and routed as they were:
    one matter goes to one department. A twin with a department decides an appeal routing was unsure
    of; when routing would send it elsewhere, it goes to triage with the twin's department first.
    Nothing is merged: a dispatcher does that."""
    problems = {d.appeal_id: problem_of(d) for d in decisions}
    found = twins_for_batch(session, [appeals[d.appeal_id] for d in decisions], dict(problems),
                            vectors if vectors is not None else {}, embed, embedder=embedder)
    return [follow_twin(d, appeals[d.appeal_id], tuple(found.get(d.appeal_id, ())), ref, calendar)
            for d in decisions]


def follow_twin(d: Decision, appeal: Appeal, twins: tuple[Candidate, ...], ref: Reference,
                calendar: Calendar) -> Decision:
    if not twins:
        return d
    twin = twin_to_follow(twins)
    if twin is None or twin.department is None:
        return replace(d, twins=twins)
    own = d.department_code if d.action == Action.route else None
    note = follow_note(twin, own)
    if own == twin.department:
        return replace(d, twins=twins, reason=f"{d.reason}; {note}")
    if own is None:
        category = twin.category or d.category_code
        route = ref.catalogue.route(category, appeal.district, appeal.street) if category else None
        assisting = route.assisting if route and route.department_code == twin.department else ()
        return replace(d, twins=twins, action=Action.route, department_code=twin.department, assisting=assisting,
                       category_code=category, reason=f"{note}; {d.reason}",
                       deadlines=deadlines_of(appeal, category, ref, appeal.received_at, calendar))
    first = Suggestion(twin.department, twin.category or d.category_code or "", twin.score,
                       f"probable twin {twin.code} went there / 同一事项 {twin.code} 已派往此部门")
    rest = tuple(s for s in d.suggestions if s.department_code != twin.department)
    if not rest and d.department_code:
        rest = (Suggestion(d.department_code, d.category_code or "", round(d.confidence, 3), d.reason[:200]),)
    return replace(d, twins=twins, action=Action.triage, department_code=None, assisting=(), deadlines=None,
                   suggestions=(first, *rest)[:3], reason=f"{note}; {d.reason}")


def load_claimed(session: Session, ids: list[int]) -> list[Appeal]:
    return list(session.execute(
        select(Appeal).where(col(Appeal.id).in_(ids), col(Appeal.status) == AppealStatus.received)
        .order_by(col(Appeal.id))
    ).scalars())


def record(session: Session, decisions: list[Decision], appeals: dict[int, Appeal], ref: Reference,
           *, now: datetime) -> DispatchSummary:
    """Apply the decisions that still hold, with their assisting departments and outbox rows."""
    transitions = [_transition(d, now) for d in decisions]
    applied = {t.appeal_id for t in apply_transitions(session, transitions, now=now)}
    summary = DispatchSummary(unchanged=len(decisions) - len(applied))
    assists: list[dict] = []
    outbox: list[Message] = []
    files = attached(session, [d.appeal_id for d in decisions if d.appeal_id in applied and d.action == Action.route],
                     where="workbench")
    for d in decisions:
        if d.appeal_id not in applied:
            continue
        if d.action == Action.route:
            summary.dispatched += 1
        else:
            summary.triaged += 1
        assists += [dict(appeal_id=d.appeal_id, department_code=c) for c in d.assisting]
        outbox += messages(d, appeals[d.appeal_id], ref.departments, files=files.get(d.appeal_id, ""))
    if assists:
        session.execute(insert(AppealAssist), assists)
    for embedder_name in {d.embedder for d in decisions if d.embedder and d.appeal_id in applied}:
        keep_vectors(session, {d.appeal_id: d.vector for d in decisions
                               if d.embedder == embedder_name and d.appeal_id in applied}, embedder_name)
    twin_events = [twin_event(d, now) for d in decisions if d.appeal_id in applied and d.twins]
    if twin_events:
        session.execute(insert(AppealEvent), twin_events)
    start_clocks(session, [row for d in decisions if d.appeal_id in applied and d.deadlines
                           for row in clock_rows(d.appeal_id, d.deadlines, appeals[d.appeal_id].received_at,
                                                 ref.calendar)])
    summary.notifications = write(session, outbox, now=now)
    return summary


DUPLICATE_EVENT = "duplicate_suspected"


def twin_event(d: Decision, now: datetime) -> dict:
    """The history's note of probable twins, for the dispatcher's view and a one-click merge; staff
    only (the public timeline is an allow-list)."""
    codes = "、".join(t.code for t in d.twins)
    return dict(appeal_id=d.appeal_id, kind=DUPLICATE_EVENT, actor=ACTOR, at=now, detail={
        "note": f"疑似与 {codes} 为同一事项 / probably the same matter as {', '.join(t.code for t in d.twins)}",
        "twins": [dict(code=t.code, similarity=t.similarity, score=t.score, shared_places=list(t.shared_places),
                       department=t.department, why=t.why) for t in d.twins]})


def _transition(d: Decision, now: datetime) -> Transition:
    changes: dict = dict(category_code=d.category_code, routing_confidence=round(d.confidence, 3),
                         routing_reason=d.reason[:500], claimed_until=None)
    # Why it went where it went, readable in the workbench: rule or model, its version, confidence,
    # and for triage the suggestions the dispatcher chooses from.
    detail: dict = {"reason": d.reason, "category": d.category_code, "routed_by": "model" if d.model_version
                    else "rule", "model_version": d.model_version, "confidence": round(d.confidence, 3),
                    "suggestions": [dict(department=s.department_code, category=s.category_code,
                                         probability=s.probability, why=s.why, keywords=list(s.keywords))
                                    for s in d.suggestions]}
    if d.action == Action.route:
        placed, recorded = placement(d, now)
        changes.update(placed)
        detail.update(recorded)
    return Transition(d.appeal_id, d.version, AppealStatus.received, d.action, ACTOR, changes, detail)


def messages(d: Decision, appeal: Appeal, departments, followers=(), *, files: dict | str = "") -> list[Message]:
    """Who hears of a decision: the requester of a triaged appeal; the departments and the
    requester (and those of appeals merged into it) of a dispatched one. `files` says what photos
    the appeal carries, for the departments (models/files/attachments.attached)."""
    key = f"v{d.version}"
    if d.action == Action.triage:
        return messages_for(Event.triaged, appeal, key=key, departments=departments)
    assert d.deadlines and d.department_code
    return messages_for(Event.dispatched, appeal, key=key, departments=departments, handling=d.department_code,
                        assisting=d.assisting, facts=dispatch_facts(d.category_code, d.deadlines) | {
                            "attached": files}, followers=followers)


def dispatch_facts(category_code: str | None, deadlines: Deadlines) -> dict:
    return dict(category=category_name(category_code), accept_due=when(deadlines.accept_due_at),
                resolve_due=when(deadlines.resolve_due_at))
