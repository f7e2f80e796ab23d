"""What handlers, dispatchers and supervisors do to an appeal. Every action goes through the
state machine's table (lifecycle.check) and is applied guarded by status and version."""

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlmodel import Session

from appealflow.models.access import merge_parent_condition
from appealflow.models.appeal import Appeal, AppealAssist, ExtensionRequest
from appealflow.models.calendar import WorkingCalendar
from appealflow.models.deadlines import Duration, deadlines_for, policy_for
from appealflow.models.department import Department
from appealflow.models.enums import AppealStatus
from appealflow.models.escalation import (
    DeadlineClock,
    clock_rows,
    pause_clocks,
    resume_clocks,
    start_clocks,
    stop_clocks,
    tier_times,
)
from appealflow.models.lifecycle import DEPARTMENT, Action, IllegalTransition, Transition, apply_transitions, check
from appealflow.models.outbox import Notification, due_text, message_fields, notification_rows, requester_targets
from appealflow.models.people import Staff
from appealflow.models.reference import read_reference
from appealflow.notifications.messages import render

MAX_RETURNS_BEFORE_ARBITRATION = 2


class ActionRefused(Exception):
    """The request names something that does not hold (a department, a parent, a reason)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class NotYourDepartment(Exception):
    """Readable (an assisting department) but not this department's to act on."""


class StaleVersion(Exception):
    """Someone changed the appeal since the version the action names."""

    def __init__(self, appeal: Appeal):
        super().__init__(f"the appeal is now {appeal.status} at version {appeal.version}")
        self.status = appeal.status
        self.version = appeal.version


class AlreadyRated(IllegalTransition):
    """A second rating of the same reply: the first one stands."""

    def __init__(self, appeal: Appeal):
        Exception.__init__(self, "这个答复已经评价过了 / this reply was already rated")
        self.status, self.action, self.version = appeal.status, Action.close, appeal.version


@dataclass
class ActionInput:
    version: int
    reason: str | None = None
    text: str | None = None
    department: str | None = None
    assisting: list[str] = field(default_factory=list)
    parent: str | None = None
    extra: str | None = None
    extension_id: int | None = None
    approve: bool | None = None
    attachments: list[dict] = field(default_factory=list)
    solved: bool | None = None
    satisfaction: str | None = None


SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")


@dataclass
class Effects:
    """What an action does beyond its status: columns, the event's detail, messages, clocks."""

    changes: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    messages: list[list[dict]] = field(default_factory=list)
    clocks: list[dict] | None = None  # new clocks to start in place of the running ones


def act(session: Session, staff: Staff, appeal: Appeal, action: Action, given: ActionInput, *,
        now: datetime, calendar: WorkingCalendar) -> Appeal:
    """Take one action; the caller commits. Raises NotPermitted, IllegalTransition, StaleVersion,
    NotYourDepartment or ActionRefused."""
    action = _third_return(appeal, action)
    # Rated, and not replied again since (a reopened appeal's new reply is rated afresh).
    rated = appeal.rated_at is not None and appeal.status != AppealStatus.replied
    if action in (Action.close, Action.reopen) and rated:
        raise AlreadyRated(appeal)
    try:
        check(staff.role, appeal.status, action)
    except IllegalTransition as error:
        error.version = appeal.version  # so the client can reload and see what happened
        raise
    if staff.role in DEPARTMENT and action != Action.note and appeal.department_code != staff.department_code:
        raise NotYourDepartment(f"only {appeal.department_code} acts on this appeal; assisting departments add notes")
    if given.version != appeal.version:
        raise StaleVersion(appeal)
    paused_at = appeal.paused_at
    effects = _effects(session, staff, appeal, action, given, now, calendar)
    applied = apply_transitions(session, [Transition(appeal.id, appeal.version, appeal.status, action, staff.actor,
                                                     effects.changes, effects.detail)], now=now)
    if not applied:  # changed between our read and our write; the caller rolls back
        session.refresh(appeal)
        raise StaleVersion(appeal)
    for message in effects.messages:
        session.execute(insert(Notification), message)
    _move_clocks(session, appeal.id, action, effects, paused_at, now, calendar)
    session.refresh(appeal)
    return appeal


SATISFIES = {Action.accept: ("accept",), Action.contact: ("contact",)}
ENDS_CLOCKS = {Action.reply, Action.return_, Action.return_to_supervisor, Action.merge, Action.invalidate}


def _move_clocks(session: Session, appeal_id: int, action: Action, effects: Effects, paused_at: datetime | None,
                 now: datetime, calendar: WorkingCalendar) -> None:
    if effects.clocks is not None:
        start_clocks(session, effects.clocks)
    elif action in SATISFIES:
        stop_clocks(session, appeal_id, SATISFIES[action])
    elif action in ENDS_CLOCKS:
        stop_clocks(session, appeal_id)
    elif action == Action.request_info:
        pause_clocks(session, appeal_id)
    elif action == Action.info_received and paused_at:
        resume_clocks(session, appeal_id, paused_at, now, calendar)


def _third_return(appeal: Appeal, action: Action) -> Action:
    if action == Action.return_ and appeal.return_count >= MAX_RETURNS_BEFORE_ARBITRATION:
        return Action.return_to_supervisor
    return action


def _require(value, field: str, message: str):
    if not value:
        raise ActionRefused(field, message)
    return value


def _department(session: Session, code: str | None, field: str = "department") -> Department:
    department = session.get(Department, _require(code, field, "name a department"))
    if department is None:
        raise ActionRefused(field, f"unknown department {code!r}")
    return department


def _to_requester(session: Session, appeal: Appeal, event: str, now: datetime, key: str, **more) -> list[dict]:
    """A message to the requester, and to the requester of every appeal merged into this one: a
    merged appeal follows its parent, so all who raised the matter hear the same."""
    followers = session.execute(select(Appeal).where(Appeal.parent_id == appeal.id,
                                                     Appeal.status == AppealStatus.merged)).scalars()
    rows = []
    for each in (appeal, *followers):
        subject, body = render(event, "requester", **message_fields(each, **more))
        rows += notification_rows(appeal_id=each.id, event=f"{event}:{appeal.id}:{key}", recipient="requester",
                                  targets=requester_targets(each), subject=subject, body=body, now=now)
    return rows


def _to_department(appeal: Appeal, department: Department, event: str, now: datetime, key: str,
                   **more) -> list[dict]:
    subject, body = render(event, "department", **message_fields(appeal, department_name=department.name_zh, **more))
    return notification_rows(appeal_id=appeal.id, event=f"{event}:{key}", recipient=f"department:{department.code}",
                             targets=list(department.notify), subject=subject, body=body, now=now)


def _effects(session: Session, staff: Staff, appeal: Appeal, action: Action, given: ActionInput,
             now: datetime, calendar: WorkingCalendar) -> Effects:
    """The columns an action changes, what its event records, and the messages it sends."""
    key = f"v{appeal.version}"  # one message per action taken, however often a request is retried
    detail: dict = {"reason": given.reason} if given.reason else {}
    if action in (Action.accept, Action.contact):
        return Effects(detail=detail)
    if action == Action.note:
        return Effects(detail={"text": _require(given.text, "text", "a note needs text")})
    if action == Action.request_info:
        question = _require(given.text or given.reason, "text", "say what information is needed")
        return Effects({"paused_at": now}, {"question": question},
                       [_to_requester(session, appeal, "information_requested", now, key, question=question)])
    if action == Action.info_received:
        paused_at = appeal.paused_at or now
        working = session.execute(select(DeadlineClock.working).where(
            DeadlineClock.appeal_id == appeal.id, DeadlineClock.state == "paused").limit(1)).scalar()
        waited = calendar.working_time_between(paused_at, now)
        changes: dict = {"paused_at": None}
        for column in ("accept_due_at", "contact_due_at", "resolve_due_at"):
            if due := getattr(appeal, column):
                changes[column] = calendar.add_working_time(due, waited) if working else due + (now - paused_at)
        return Effects(changes, {"information": given.text, "paused_seconds": int((now - paused_at).total_seconds())})
    if action == Action.reply:
        result = _require(given.text, "text", "a reply states the result")
        return Effects({}, {"result": result, "attachments": given.attachments},
                       [_to_requester(session, appeal, "replied", now, key, result=result)])
    if action in (Action.return_, Action.return_to_supervisor):
        _require(given.reason, "reason", "say why this appeal is not your department's")
        centre = session.get(Department, "hotline_centre")
        messages = [_to_department(appeal, centre, "returned", now, key, reason=given.reason,
                                   returned_by=staff.department_code)] if centre else []
        # Back to the centre: no department keeps reading it, assisting ones included; whoever
        # dispatches it again names the assisting departments anew.
        session.execute(delete(AppealAssist).where(AppealAssist.appeal_id == appeal.id))
        return Effects({"department_code": None, "return_count": appeal.return_count + 1},
                       {"reason": given.reason, "department": appeal.department_code}, messages)
    if action == Action.request_extension:
        extra = _require(given.extra, "extra", "say how much more time, like '3d'")
        try:
            Duration.parse(extra)
        except ValueError as error:
            raise ActionRefused("extra", str(error)) from None
        reason = _require(given.reason, "reason", "an extension needs a reason")
        request = ExtensionRequest(appeal_id=appeal.id, requested_by=staff.actor, reason=reason, extra=extra,
                                   created_at=now)
        session.add(request)
        session.flush()
        return Effects(detail={"reason": reason, "extra": extra, "extension_id": request.id})
    if action == Action.decide_extension:
        request = session.get(ExtensionRequest, _require(given.extension_id, "extension_id", "name the request"))
        if request is None or request.appeal_id != appeal.id or request.status != "pending":
            raise ActionRefused("extension_id", "no pending extension request with this id on this appeal")
        if given.approve is None:
            raise ActionRefused("approve", "say whether the extension is approved")
        request.status, request.decided_by, request.decided_at = (
            "approved" if given.approve else "denied"), staff.actor, now
        effects = Effects(detail={"extension_id": request.id, "decision": request.status, "reason": given.reason})
        if given.approve and appeal.resolve_due_at:
            due = calendar.add(appeal.resolve_due_at, Duration.parse(request.extra), working=True)
            effects.changes["resolve_due_at"] = due
            effects.clocks = _extended_clocks(session, appeal.id, due, calendar)
        department = session.get(Department, appeal.department_code)
        if department:
            effects.messages.append(_to_department(appeal, department, "extension_decided", now, key,
                                                   decision=request.status, extra=request.extra))
        return effects
    if action == Action.add_assist:
        helper = _department(session, given.department)
        if helper.code == appeal.department_code or session.get(AppealAssist, (appeal.id, helper.code)):
            raise ActionRefused("department", f"{helper.code} already works on this appeal")
        session.add(AppealAssist(appeal_id=appeal.id, department_code=helper.code))
        return Effects({}, {"department": helper.code, "reason": given.reason}, [
            _to_department(appeal, helper, "assist_requested", now, key, reason=given.reason or "-")])
    if action == Action.dispatch:
        return _dispatch_by_hand(session, appeal, given, now, calendar, key)
    if action == Action.merge:
        wanted = _require(given.parent, "parent", "name the parent appeal")
        parent = session.execute(select(Appeal).where(
            Appeal.code == wanted, Appeal.id != appeal.id, merge_parent_condition(staff))).scalar_one_or_none()
        if parent is None:
            raise ActionRefused("parent", "no appeal with this code that this one can join")
        return Effects({"parent_id": parent.id}, {"parent": parent.code},
                       [_to_requester(session, appeal, "merged", now, key, parent=parent.code)])
    if action == Action.invalidate:
        reason = _require(given.reason, "reason", "say why the appeal is invalid")
        return Effects({}, {"reason": reason}, [_to_requester(session, appeal, "invalidated", now, key, reason=reason)])
    if action in (Action.close, Action.reopen):
        if given.satisfaction not in SATISFACTION:
            raise ActionRefused("satisfaction", f"one of {', '.join(SATISFACTION)}")
        if given.solved is None:
            raise ActionRefused("solved", "say whether the matter was solved")
        return Effects({"rated_solved": given.solved, "rated_satisfaction": given.satisfaction, "rated_at": now},
                       {"solved": given.solved, "satisfaction": given.satisfaction})
    raise ActionRefused("action", f"{action.value} is not taken through the workbench")


def _extended_clocks(session: Session, appeal_id: int, due: datetime, calendar: WorkingCalendar) -> list[dict]:
    """The appeal's clocks after an approved extension: the resolve clock starts over toward its new
    deadline (a tier it fired before may fire again: missing an extended deadline is news)."""
    rows = []
    for clock in session.execute(select(DeadlineClock).where(DeadlineClock.appeal_id == appeal_id,
                                                             DeadlineClock.state != "stopped")).scalars():
        new_due = due if clock.clock == "resolve" else clock.due_at
        times = tier_times(clock.started_at, new_due, working=clock.working, calendar=calendar)
        first = "warning" if clock.clock == "resolve" else clock.next_tier
        column = {"warning": "warn_at", "breach": "due_at", "severe": "severe_at"}
        rows.append(dict(appeal_id=appeal_id, clock=clock.clock, working=clock.working, started_at=clock.started_at,
                         state=clock.state, next_tier=first,
                         next_tier_at=times[column[first]] if first and clock.state == "running" else None, **times))
    return rows


def _dispatch_by_hand(session: Session, appeal: Appeal, given: ActionInput, now: datetime,
                      calendar: WorkingCalendar, key: str) -> Effects:
    primary = _department(session, given.department)
    helpers = [_department(session, code, "assisting") for code in given.assisting if code != primary.code]
    ref = read_reference(session)
    lineage = ref.catalogue.lineage(appeal.category_code) if appeal.category_code else []
    deadlines = deadlines_for(policy_for(ref.policies, appeal.appeal_type, appeal.priority, lineage), now, calendar)
    # The assisting departments become exactly those named now: a department dropped by this
    # dispatch (or now the primary) stops assisting, and so stops reading the appeal through it.
    wanted = {h.code for h in helpers}
    existing = set(session.execute(select(AppealAssist.department_code).where(
        AppealAssist.appeal_id == appeal.id)).scalars())
    if existing - wanted:
        session.execute(delete(AppealAssist).where(AppealAssist.appeal_id == appeal.id,
                                                   AppealAssist.department_code.in_(existing - wanted)))
    for code in sorted(wanted - existing):
        session.add(AppealAssist(appeal_id=appeal.id, department_code=code))
    due = dict(accept_due=due_text(deadlines.accept_due_at), resolve_due=due_text(deadlines.resolve_due_at))
    messages = [_to_department(appeal, primary, "dispatched", now, key, **due),
                _to_requester(session, appeal, "dispatched", now, key,
                              department_name=f"{primary.name_zh} ({primary.name_en})", **due)]
    changes = dict(department_code=primary.code, dispatched_at=now, accept_due_at=deadlines.accept_due_at,
                   contact_due_at=deadlines.contact_due_at, resolve_due_at=deadlines.resolve_due_at, paused_at=None)
    detail = {"department": primary.code, "assisting": [h.code for h in helpers], "reason": given.reason}
    return Effects(changes, detail, messages, clocks=clock_rows(appeal.id, deadlines, now, calendar))


