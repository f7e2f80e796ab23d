"""What handlers, dispatchers and supervisors do to an appeal. Every action goes through the
state machine's table (lifecycle.check) and is applied guarded by status and version."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from sqlalchemy import delete, select
from sqlmodel import Session, col

from appealflow.models.access import merge_parent_condition
from appealflow.models.appeal import Appeal, AppealAssist, ExtensionRequest
from appealflow.models.audience import Event, Message, messages_for, when
from appealflow.models.calendar import WorkingCalendar
from appealflow.models.columns import stored_id
from appealflow.models.deadlines import Duration, deadlines_for, policy_for
from appealflow.models.department import Department
from appealflow.models.dispatch import by_hand, placement, set_assisting
from appealflow.models.dispatch import messages as dispatch_messages
from appealflow.models.enums import DEPARTMENT_ROLES, AppealStatus, AppealType, ExtensionStatus, Priority, Role
from appealflow.models.escalation import (
    clock_rows,
    extended_clocks,
    pause_clocks,
    paused_on_working_clock,
    resume_clocks,
    shifted_by_pause,
    start_clocks,
    stop_clocks,
)
from appealflow.models.lifecycle import Action, IllegalTransition, Transition, apply_transitions, as_taken, check
from appealflow.models.outbox import write
from appealflow.models.people import Staff
from appealflow.models.policy_qa import PolicyAnswer
from appealflow.models.reference import read_reference


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


class NothingToRate(IllegalTransition):
    """A rating before there is a reply to rate."""

    def __init__(self, appeal: Appeal):
        Exception.__init__(self, "还没有可评价的答复 / there is no reply to rate yet")
        self.status, self.action, self.version = appeal.status, Action.close, appeal.version


RATING_ACTIONS = (Action.close, Action.reopen, Action.reopen_to_supervisor)


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
    policy_answer: int | None = None
    solved: bool | None = None
    satisfaction: str | None = None


SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")


@dataclass
class Effects:
    """What an action does beyond its status: columns, the event's detail, messages, clocks."""

    changes: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    clocks: list[dict] | None = None  # new clocks to start in place of the running ones


class DepartmentsOf:
    """Departments looked up as messages need them, for the one appeal an action touches."""

    def __init__(self, session: Session):
        self._session = session

    def get(self, code: str, /) -> Department | None:
        return self._session.get(Department, code) if code else None


@dataclass
class Step:
    """One action being taken: who, on what, with what, when."""

    session: Session
    staff: Staff
    appeal: Appeal
    action: Action
    given: ActionInput
    now: datetime
    calendar: WorkingCalendar

    @property
    def appeal_id(self) -> int:
        return stored_id(self.appeal)

    @property
    def key(self) -> str:
        return f"v{self.appeal.version}"  # one message per action taken, however often a request is retried

    @cached_property
    def departments(self) -> DepartmentsOf:
        return DepartmentsOf(self.session)

    def followers(self) -> list[Appeal]:
        """Appeals merged into this one: their requesters hear what this one's hears."""
        return list(self.session.execute(select(Appeal).where(
            col(Appeal.parent_id) == self.appeal_id, col(Appeal.status) == AppealStatus.merged)).scalars())

    def tell(self, event: Event, **facts) -> list[Message]:
        return messages_for(event, self.appeal, key=self.key, departments=self.departments, facts=facts,
                            followers=self.followers())


def department_may_take(role: Role, department_code: str | None, appeal_department: str | None,
                        action: Action) -> bool:
    """A department acts only on the appeals it holds; an assisting department adds notes."""
    return role not in DEPARTMENT_ROLES or action == Action.note or appeal_department == department_code


def answered_on_the_spot(appeal_type: AppealType | str) -> bool:
    """Only a consultation is answered from the policy base; anything else is dispatched."""
    return appeal_type == AppealType.consultation


def act(session: Session, staff: Staff, appeal: Appeal, action: Action, given: ActionInput, *,
        now: datetime, calendar: WorkingCalendar) -> Appeal:
    """Take one action; the caller commits. Raises NotPermitted, IllegalTransition, StaleVersion,
    NotYourDepartment or ActionRefused."""
    action = as_taken(action, appeal.return_count, appeal.reopen_count, has_department=bool(appeal.department_code))
    # Rated, and not replied again since (a reopened appeal's new reply is rated afresh).
    rated = appeal.rated_at is not None and appeal.status != AppealStatus.replied
    if action in RATING_ACTIONS and rated:
        raise AlreadyRated(appeal)
    if action in RATING_ACTIONS and appeal.status != AppealStatus.replied and staff.role == Role.requester:
        raise NothingToRate(appeal)
    try:
        check(staff.role, appeal.status, action)
    except IllegalTransition as error:
        error.version = appeal.version  # so the client can reload and see what happened
        raise
    if not department_may_take(staff.role, staff.department_code, appeal.department_code, action):
        raise NotYourDepartment(f"only {appeal.department_code} acts on this appeal; assisting departments add notes")
    if given.version != appeal.version:
        raise StaleVersion(appeal)
    paused_at = appeal.paused_at
    handler = HANDLERS.get(action)
    if handler is None:
        raise ActionRefused("action", f"{action.value} is not taken through the workbench")
    effects = handler(Step(session, staff, appeal, action, given, now, calendar))
    transition = Transition(stored_id(appeal), appeal.version, appeal.status, action, staff.actor,
                            effects.changes, effects.detail)
    applied = apply_transitions(session, [transition], now=now)
    if not applied:  # changed between our read and our write; the caller rolls back
        session.refresh(appeal)
        raise StaleVersion(appeal)
    write(session, effects.messages, now=now)
    _move_clocks(session, stored_id(appeal), action, effects, paused_at, now, calendar)
    session.refresh(appeal)
    return appeal


SATISFIES = {Action.accept: ("accept",), Action.contact: ("contact",)}
ENDS_CLOCKS = {Action.reply, Action.return_, Action.return_to_supervisor, Action.merge, Action.invalidate,
               Action.withdraw, Action.reopen_to_supervisor}


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


def _require(value, field: str, message: str):
    if not value:
        raise ActionRefused(field, message)
    return value


def _department(session: Session, code: str | None, field: str = "department") -> Department:
    department = session.get(Department, _require(code, field, "name a department"))
    if department is None:
        raise ActionRefused(field, f"unknown department {code!r}")
    return department


# One handler per action: the columns it changes, what its event records, who hears of it.

def _accept_or_contact(s: Step) -> Effects:
    return Effects(detail={"reason": s.given.reason} if s.given.reason else {})


def _note(s: Step) -> Effects:
    return Effects(detail={"text": _require(s.given.text, "text", "a note needs text")})


def _request_info(s: Step) -> Effects:
    question = _require(s.given.text or s.given.reason, "text", "say what information is needed")
    return Effects({"paused_at": s.now}, {"question": question}, s.tell(Event.information_requested, question=question))


def _info_received(s: Step) -> Effects:
    paused_at = s.appeal.paused_at or s.now
    working = paused_on_working_clock(s.session, s.appeal_id)
    changes: dict = {"paused_at": None}
    for column in ("accept_due_at", "contact_due_at", "resolve_due_at"):
        if due := getattr(s.appeal, column):
            changes[column] = shifted_by_pause(due, paused_at=paused_at, now=s.now, working=working,
                                               calendar=s.calendar)
    # The requester answering through their link: the department hears of it (the clock runs again).
    told = s.tell(Event.information_added) if s.staff.role == Role.requester else []
    return Effects(changes, {"information": s.given.text,
                             "paused_seconds": int((s.now - paused_at).total_seconds())}, told)


def _reply(s: Step) -> Effects:
    result = _require(s.given.text, "text", "a reply states the result")
    # The reply message carries the rating link; no rating by the configured time closes it unrated.
    return Effects({"replied_at": s.now}, {"result": result, "attachments": s.given.attachments},
                   s.tell(Event.replied, result=result))


def _answer(s: Step) -> Effects:
    """当场答复: the answer read to the caller, from the policy base, stands as the reply; the requester
    is told it with the rating link, like any reply."""
    if not answered_on_the_spot(s.appeal.appeal_type):
        raise ActionRefused("action", "only a consultation is answered on the spot; dispatch anything else")
    result = _require(s.given.text, "text", "say the answer the requester was given")
    detail: dict = {"result": result}
    if s.given.policy_answer is not None:
        entry = s.session.get(PolicyAnswer, s.given.policy_answer)
        if entry is None:
            raise ActionRefused("policy_answer", "no such entry in the policy base")
        detail |= {"policy_answer": entry.id, "source": entry.source}
    return Effects({"replied_at": s.now}, detail, s.tell(Event.replied, result=result))


def _return(s: Step) -> Effects:
    reason = _require(s.given.reason, "reason", "say why this appeal is not your department's")
    returned_by = s.departments.get(s.staff.department_code or "")
    # Back to the centre: no department keeps reading it, assisting ones included; whoever
    # dispatches it again names the assisting departments anew.
    s.session.execute(delete(AppealAssist).where(col(AppealAssist.appeal_id) == s.appeal_id))
    names = {"zh": returned_by.name_zh, "en": returned_by.name_en} if returned_by else s.staff.department_code
    return Effects({"department_code": None, "return_count": s.appeal.return_count + 1},
                   {"reason": reason, "department": s.appeal.department_code},
                   s.tell(Event.returned, reason=reason, returned_by=names))


def _request_extension(s: Step) -> Effects:
    extra = _require(s.given.extra, "extra", "say how much more time, like '3d'")
    try:
        Duration.parse(extra)
    except ValueError as error:
        raise ActionRefused("extra", str(error)) from None
    reason = _require(s.given.reason, "reason", "an extension needs a reason")
    request = ExtensionRequest(appeal_id=s.appeal_id, requested_by=s.staff.actor, reason=reason, extra=extra,
                               created_at=s.now)
    s.session.add(request)
    s.session.flush()
    return Effects(detail={"reason": reason, "extra": extra, "extension_id": request.id})


def _decide_extension(s: Step) -> Effects:
    request = s.session.get(ExtensionRequest, _require(s.given.extension_id, "extension_id", "name the request"))
    if request is None or request.appeal_id != s.appeal_id or request.status != ExtensionStatus.pending:
        raise ActionRefused("extension_id", "no pending extension request with this id on this appeal")
    if s.given.approve is None:
        raise ActionRefused("approve", "say whether the extension is approved")
    request.status = ExtensionStatus.approved if s.given.approve else ExtensionStatus.denied
    request.decided_by, request.decided_at = s.staff.actor, s.now
    effects = Effects(detail={"extension_id": request.id, "decision": request.status, "reason": s.given.reason},
                      messages=s.tell(Event.extension_decided, decision=request.status, extra=request.extra))
    if s.given.approve and s.appeal.resolve_due_at:
        due = s.calendar.add(s.appeal.resolve_due_at, Duration.parse(request.extra), working=True)
        effects.changes["resolve_due_at"] = due
        effects.clocks = extended_clocks(s.session, s.appeal_id, due, s.calendar)
    return effects


def _add_assist(s: Step) -> Effects:
    helper = _department(s.session, s.given.department)
    assisting = s.session.get(AppealAssist, (s.appeal_id, helper.code)) is not None
    if helper.code == s.appeal.department_code or assisting:
        raise ActionRefused("department", f"{helper.code} already works on this appeal")
    s.session.add(AppealAssist(appeal_id=s.appeal_id, department_code=helper.code))
    return Effects({}, {"department": helper.code, "reason": s.given.reason},
                   messages_for(Event.assist_requested, s.appeal, key=s.key, departments=s.departments,
                                helper=helper.code, facts={"reason": s.given.reason or "-"}))


def _dispatch(s: Step) -> Effects:
    """By hand, through the same decision, deadlines and messages as automatic dispatch."""
    primary = _department(s.session, s.given.department)
    helpers = tuple(_department(s.session, code, "assisting").code for code in s.given.assisting
                    if code != primary.code)
    ref = read_reference(s.session)
    decision = by_hand(s.appeal, ref, department_code=primary.code, assisting=helpers,
                       reason=s.given.reason or "dispatched by hand", now=s.now, calendar=s.calendar)
    set_assisting(s.session, s.appeal_id, helpers)
    changes, detail = placement(decision, s.now)
    assert decision.deadlines
    return Effects(changes | {"paused_at": None}, detail | {"reason": s.given.reason},
                   dispatch_messages(decision, s.appeal, ref.departments, s.followers()),
                   clocks=clock_rows(s.appeal_id, decision.deadlines, s.now, s.calendar))


def _merge(s: Step) -> Effects:
    wanted = _require(s.given.parent, "parent", "name the parent appeal")
    parent = s.session.execute(select(Appeal).where(
        col(Appeal.code) == wanted, col(Appeal.id) != s.appeal_id,
        merge_parent_condition(s.staff))).scalar_one_or_none()
    if parent is None:
        raise ActionRefused("parent", "no appeal with this code that this one can join")
    return Effects({"parent_id": parent.id}, {"parent": parent.code}, s.tell(Event.merged, parent=parent.code))


def _invalidate(s: Step) -> Effects:
    reason = _require(s.given.reason, "reason", "say why the appeal is invalid")
    _release_merged(s)
    return Effects({}, {"reason": reason}, s.tell(Event.invalidated, reason=reason))


RELEASED_BY = "system:workbench"


def _release_merged(s: Step) -> None:
    """The appeals merged into one that closes without an answer (withdrawn by its requester, found
    invalid) go back to triage: their requesters still want one, and a merged appeal only follows
    its parent, so left merged they would wait for ever. A dispatcher places them again."""
    children = s.session.execute(select(col(Appeal.id), col(Appeal.version)).where(
        col(Appeal.parent_id) == s.appeal_id, col(Appeal.status) == AppealStatus.merged)).all()
    why = {Action.withdraw: "主件已由诉求人撤回 / the appeal it was merged into was withdrawn",
           Action.invalidate: "主件被认定无效 / the appeal it was merged into was found invalid"}[s.action]
    apply_transitions(s.session, [
        Transition(child_id, version, AppealStatus.merged, Action.release, RELEASED_BY, {"parent_id": None},
                   {"parent": s.appeal.code, "reason": why}) for child_id, version in children], now=s.now)


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


def _rate(s: Step) -> Effects:
    changes, detail = _rating(s)
    return Effects(changes, detail, s.tell(Event.closed, satisfaction=s.given.satisfaction))


def _reopen(s: Step) -> Effects:
    """重办: back to the department that replied, at raised priority, with deadlines from now."""
    changes, detail = _rating(s)
    ref = read_reference(s.session)
    lineage = ref.catalogue.lineage(s.appeal.category_code) if s.appeal.category_code else []
    deadlines = deadlines_for(policy_for(ref.policies, s.appeal.appeal_type, Priority.urgent, lineage), s.now,
                              s.calendar)
    changes |= {"priority": Priority.urgent, "reopen_count": s.appeal.reopen_count + 1, "replied_at": None,
                "dispatched_at": s.now, "paused_at": None, "accept_due_at": deadlines.accept_due_at,
                "contact_due_at": deadlines.contact_due_at, "resolve_due_at": deadlines.resolve_due_at}
    detail |= {"department": s.appeal.department_code, "resolve_due_at": deadlines.resolve_due_at.isoformat()}
    return Effects(changes, detail, s.tell(Event.reopened, accept_due=when(deadlines.accept_due_at),
                                           resolve_due=when(deadlines.resolve_due_at)),
                   clocks=clock_rows(s.appeal_id, deadlines, s.now, s.calendar))


def _reopen_to_supervisor(s: Step) -> Effects:
    changes, detail = _rating(s)
    changes |= {"reopen_count": s.appeal.reopen_count + 1, "replied_at": None}
    return Effects(changes, detail | {"department": s.appeal.department_code},
                   s.tell(Event.reopened_to_supervisor))


def _withdraw(s: Step) -> Effects:
    reason = (s.given.reason or "").strip()
    # Only this appeal's requester: the requesters of appeals merged into it still want an answer.
    _release_merged(s)
    told = messages_for(Event.withdrawn, s.appeal, key=s.key, departments=s.departments,
                        facts={"reason": reason or "-"})
    return Effects({"paused_at": None}, {"reason": reason} if reason else {}, told)


def _add_information(s: Step) -> Effects:
    information = _require(s.given.text, "text", "say what to add")
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


HANDLERS: dict[Action, Callable[[Step], Effects]] = {
    Action.accept: _accept_or_contact,
    Action.contact: _accept_or_contact,
    Action.note: _note,
    Action.request_info: _request_info,
    Action.info_received: _info_received,
    Action.reply: _reply,
    Action.answer: _answer,
    Action.return_: _return,
    Action.return_to_supervisor: _return,
    Action.request_extension: _request_extension,
    Action.decide_extension: _decide_extension,
    Action.add_assist: _add_assist,
    Action.dispatch: _dispatch,
    Action.merge: _merge,
    Action.invalidate: _invalidate,
    Action.close: _rate,
    Action.reopen: _reopen,
    Action.reopen_to_supervisor: _reopen_to_supervisor,
    Action.withdraw: _withdraw,
    Action.add_information: _add_information,
}
