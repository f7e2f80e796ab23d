"""What handlers, dispatchers and supervisors do to an appeal. Every action goes through the
state machine's table (lifecycle.check) and is applied guarded by status and version."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlmodel import Session, col
from sqlmodel import select as select_rows

from appealflow.models.appeals.access import merge_parent_condition
from appealflow.models.appeals.appeal import Appeal, AppealAssist, AppealEvent, ExtensionRequest
from appealflow.models.appeals.enums import (
    DEPARTMENT_ROLES,
    AppealStatus,
    AppealType,
    ContactMethod,
    ContactOutcome,
    ExtensionStatus,
    Role,
)
from appealflow.models.appeals.lifecycle import (
    Action,
    IllegalTransition,
    Transition,
    apply_transitions,
    as_taken,
    check,
)
from appealflow.models.appeals.requester import (
    RATING_ACTIONS,
    AlreadyRated,
    NothingToRate,
    add_information,
    rate,
    reopen,
    reopen_to_supervisor,
    withdraw,
)
from appealflow.models.appeals.steps import (
    ActionInput,
    ActionRefused,
    Effects,
    NotYourDepartment,
    StaleVersion,
    Step,
    named_department,
    release_merged,
    require,
)
from appealflow.models.city.department import Department
from appealflow.models.city.people import Staff, StaffUser
from appealflow.models.city.reference import read_reference
from appealflow.models.clocks.calendar import WorkingCalendar
from appealflow.models.clocks.deadlines import Duration
from appealflow.models.clocks.escalation import (
    clock_rows,
    extended_clocks,
    pause_clocks,
    paused_on_working_clock,
    resume_clocks,
    shifted_by_pause,
    start_clocks,
    stop_clocks,
)
from appealflow.models.files.attachments import attached
from appealflow.models.routing.dispatch import by_hand, placement, set_assisting
from appealflow.models.routing.dispatch import messages as dispatch_messages
from appealflow.models.routing.policy_qa import PolicyAnswer
from appealflow.models.storage.columns import stored_id
from appealflow.models.telling.audience import Event, assignees, messages_for, when
from appealflow.models.telling.outbox import write


def department_may_take(role: Role, department_code: str | None, appeal_department: str | None,
                        action: Action) -> bool:
    """A department acts only on the appeals it holds; an assisting department adds notes."""
    return role not in DEPARTMENT_ROLES or action == Action.note or appeal_department == department_code


def reviews_replies(session: Session, department_code: str | None) -> bool:
    """Whether the department's head approves its handlers' replies before the requester sees them."""
    department = session.get(Department, department_code) if department_code else None
    return bool(department and department.review_replies)


def answered_on_the_spot(appeal_type: AppealType | str) -> bool:
    """Only a consultation is answered from the policy base; anything else is dispatched."""
    return appeal_type == AppealType.consultation


def act(session: Session, staff: Staff, appeal: Appeal, action: Action, given: ActionInput, *,
        now: datetime, calendar: WorkingCalendar) -> Appeal:
    """Take one action; the caller commits. Raises NotPermitted, IllegalTransition, StaleVersion,
    NotYourDepartment or ActionRefused."""
    action = as_taken(action, appeal.return_count, appeal.reopen_count, has_department=bool(appeal.department_code),
                      reviewed=staff.role == Role.handler and reviews_replies(session, appeal.department_code))
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
# A reply under review keeps the clock running until the head approves it.
ENDS_CLOCKS = {Action.reply, Action.approve_reply, Action.return_, Action.return_to_supervisor, Action.merge,
               Action.invalidate, Action.withdraw, Action.reopen_to_supervisor}


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


# One handler per action: the columns it changes, what its event records, who hears of it.

def _accept(s: Step) -> Effects:
    return Effects(detail={"reason": s.given.reason} if s.given.reason else {})


# A contact recorded later than this after the fact, or in the future, is a typing slip.
CONTACT_SLACK = timedelta(minutes=5)


def _contact_record(s: Step, *, required: bool) -> dict:
    """How the requester was contacted: method, when, outcome and a note; each checked."""
    if not required and not s.given.method:
        return {"reason": s.given.reason} if s.given.reason else {}
    method = require(s.given.method, "method", f"say how: {', '.join(ContactMethod)}")
    if method not in set(ContactMethod):
        raise ActionRefused("method", f"one of {', '.join(ContactMethod)}")
    outcome = require(s.given.outcome, "outcome", f"say what came of it: {', '.join(ContactOutcome)}")
    if outcome not in set(ContactOutcome):
        raise ActionRefused("outcome", f"one of {', '.join(ContactOutcome)}")
    at = s.given.contacted_at or s.now
    if at.tzinfo is None:
        raise ActionRefused("contacted_at", "give the time with its zone, like 2026-12-03T10:12+08:00")
    if at > s.now + CONTACT_SLACK or at < s.appeal.received_at - CONTACT_SLACK:
        raise ActionRefused("contacted_at", "the contact's time is between the appeal's arrival and now")
    note = (s.given.text or s.given.reason or "").strip()
    return {"method": method, "outcome": outcome, "contacted_at": at.astimezone(UTC).isoformat(),
            **({"note": note} if note else {})}


def _contact(s: Step) -> Effects:
    """The first contact (it meets the contact clock); the record is optional for API clients."""
    return Effects(detail=_contact_record(s, required=False))


def _record_contact(s: Step) -> Effects:
    return Effects(detail=_contact_record(s, required=True))


def _assignable(s: Step, username: str | None) -> StaffUser:
    """An active handler or head of the appeal's department, named by username."""
    wanted = require(username, "assignee", "name the handler")
    user = s.session.exec(select_rows(StaffUser).where(col(StaffUser.username) == wanted)).first()
    if (user is None or not user.active or user.department_code != s.appeal.department_code
            or user.role not in DEPARTMENT_ROLES):
        raise ActionRefused("assignee", f"{wanted!r} is not a handler of {s.appeal.department_code}")
    return user


def _assign(s: Step) -> Effects:
    user = _assignable(s, s.given.assignee)
    if user.username == s.appeal.assignee:
        raise ActionRefused("assignee", f"already assigned to {user.display_name}")
    told = messages_for(Event.assigned, s.appeal, key=s.key, departments=s.departments,
                        assignee=assignees(s.session, [user.username]).get(user.username),
                        facts={"assigned_by": s.staff.username, "resolve_due": when(s.appeal.resolve_due_at)})
    return Effects({"assignee": user.username}, {"assignee": user.username, "previous": s.appeal.assignee}, told)


def _take(s: Step) -> Effects:
    if s.appeal.assignee == s.staff.username:
        raise ActionRefused("assignee", "it is yours already")
    if s.appeal.assignee:
        raise ActionRefused("assignee", f"assigned to {s.appeal.assignee}; ask your department head to reassign it")
    return Effects({"assignee": s.staff.username}, {"assignee": s.staff.username})


def _note(s: Step) -> Effects:
    return Effects(detail={"text": require(s.given.text, "text", "a note needs text")})


def _request_info(s: Step) -> Effects:
    question = require(s.given.text or s.given.reason, "text", "say what information is needed")
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
    result = require(s.given.text, "text", "a reply states the result")
    # The reply message carries the rating link; no rating by the configured time closes it unrated.
    return Effects({"replied_at": s.now}, {"result": result, "attachments": s.given.attachments},
                   s.tell(Event.replied, result=result, attached=_evidence(s)))


def _evidence(s: Step) -> dict | str:
    """The reply's photos the requester sees, said in its message with where to find them."""
    return attached(s.session, [s.appeal_id], where="tracking", purpose="reply", public_only=True).get(s.appeal_id, "")


def _submit_reply(s: Step) -> Effects:
    """审核: the reply waits for the head; nothing reaches the requester yet, and the clock runs on."""
    result = require(s.given.text, "text", "a reply states the result")
    return Effects({}, {"result": result, "attachments": s.given.attachments})


def submitted_reply(session: Session, appeal_id: int) -> dict:
    """The reply waiting for review: the detail of the newest submission."""
    found = session.exec(select_rows(AppealEvent).where(col(AppealEvent.appeal_id) == appeal_id,
                                                   col(AppealEvent.kind) == Action.submit_reply)
                         .order_by(col(AppealEvent.id).desc())).first()
    return dict(found.detail, by=found.actor) if found else {}


def _approve_reply(s: Step) -> Effects:
    """The head approves (and may edit) the handler's reply: now it is sent, as any reply."""
    submitted = submitted_reply(s.session, s.appeal_id)
    result = (s.given.text or "").strip() or require(submitted.get("result"), "text", "no reply waits for review")
    detail = {"result": result, "attachments": submitted.get("attachments") or [], "submitted_by": submitted.get("by"),
              "edited": result != submitted.get("result")}
    return Effects({"replied_at": s.now}, detail, s.tell(Event.replied, result=result, attached=_evidence(s)))


def _reject_reply(s: Step) -> Effects:
    reason = require(s.given.reason or s.given.text, "reason", "say what the reply needs")
    return Effects({}, {"reason": reason}, s.tell(Event.reply_returned, reason=reason))


def _answer(s: Step) -> Effects:
    """当场答复: the answer read to the caller, from the policy base, stands as the reply; the requester
    is told it with the rating link, like any reply."""
    if not answered_on_the_spot(s.appeal.appeal_type):
        raise ActionRefused("action", "only a consultation is answered on the spot; dispatch anything else")
    result = require(s.given.text, "text", "say the answer the requester was given")
    detail: dict = {"result": result}
    if s.given.policy_answer is not None:
        entry = s.session.get(PolicyAnswer, s.given.policy_answer)
        if entry is None:
            raise ActionRefused("policy_answer", "no such entry in the policy base")
        detail |= {"policy_answer": entry.id, "source": entry.source}
    # An operator's hold for this answer (intake `hold`) ends with it.
    return Effects({"replied_at": s.now, "claimed_by": None, "claimed_until": None}, detail,
                   s.tell(Event.replied, result=result, attached=_evidence(s)))


def _return(s: Step) -> Effects:
    reason = require(s.given.reason, "reason", "say why this appeal is not your department's")
    returned_by = s.departments.get(s.staff.department_code or "")
    # Back to the centre: no department keeps reading it, assisting ones included; whoever
    # dispatches it again names the assisting departments anew.
    s.session.execute(delete(AppealAssist).where(col(AppealAssist.appeal_id) == s.appeal_id))
    names = {"zh": returned_by.name_zh, "en": returned_by.name_en} if returned_by else s.staff.department_code
    return Effects({"department_code": None, "return_count": s.appeal.return_count + 1},
                   {"reason": reason, "department": s.appeal.department_code},
                   s.tell(Event.returned, reason=reason, returned_by=names))


def _request_extension(s: Step) -> Effects:
    extra = require(s.given.extra, "extra", "say how much more time, like '3d'")
    try:
        Duration.parse(extra)
    except ValueError as error:
        raise ActionRefused("extra", str(error)) from None
    reason = require(s.given.reason, "reason", "an extension needs a reason")
    request = ExtensionRequest(appeal_id=s.appeal_id, requested_by=s.staff.actor, reason=reason, extra=extra,
                               created_at=s.now)
    s.session.add(request)
    s.session.flush()
    return Effects(detail={"reason": reason, "extra": extra, "extension_id": request.id})


def _decide_extension(s: Step) -> Effects:
    request = s.session.get(ExtensionRequest, require(s.given.extension_id, "extension_id", "name the request"))
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
    helper = named_department(s.session, s.given.department)
    assisting = s.session.get(AppealAssist, (s.appeal_id, helper.code)) is not None
    if helper.code == s.appeal.department_code or assisting:
        raise ActionRefused("department", f"{helper.code} already works on this appeal")
    s.session.add(AppealAssist(appeal_id=s.appeal_id, department_code=helper.code))
    return Effects({}, {"department": helper.code, "reason": s.given.reason},
                   messages_for(Event.assist_requested, s.appeal, key=s.key, departments=s.departments,
                                helper=helper.code, facts={"reason": s.given.reason or "-"}))


def _dispatch(s: Step) -> Effects:
    """By hand, through the same decision, deadlines and messages as automatic dispatch."""
    primary = named_department(s.session, s.given.department)
    helpers = tuple(named_department(s.session, code, "assisting").code for code in s.given.assisting
                    if code != primary.code)
    ref = read_reference(s.session)
    decision = by_hand(s.appeal, ref, department_code=primary.code, assisting=helpers,
                       reason=s.given.reason or "dispatched by hand", now=s.now, calendar=s.calendar)
    set_assisting(s.session, s.appeal_id, helpers)
    changes, detail = placement(decision, s.now)
    assert decision.deadlines
    return Effects(changes | {"paused_at": None}, detail | {"reason": s.given.reason},
                   dispatch_messages(decision, s.appeal, ref.departments, s.followers(),
                                     files=attached(s.session, [s.appeal_id], where="workbench").get(s.appeal_id, "")),
                   clocks=clock_rows(s.appeal_id, decision.deadlines, s.now, s.calendar))


def _merge(s: Step) -> Effects:
    wanted = require(s.given.parent, "parent", "name the parent appeal")
    parent = s.session.execute(select(Appeal).where(
        col(Appeal.code) == wanted, col(Appeal.id) != s.appeal_id,
        merge_parent_condition(s.staff))).scalar_one_or_none()
    if parent is None:
        raise ActionRefused("parent", "no appeal with this code that this one can join")
    return Effects({"parent_id": parent.id}, {"parent": parent.code}, s.tell(Event.merged, parent=parent.code))


def _invalidate(s: Step) -> Effects:
    reason = require(s.given.reason, "reason", "say why the appeal is invalid")
    release_merged(s)
    return Effects({}, {"reason": reason}, s.tell(Event.invalidated, reason=reason))


HANDLERS: dict[Action, Callable[[Step], Effects]] = {
    Action.accept: _accept,
    Action.contact: _contact,
    Action.record_contact: _record_contact,
    Action.assign: _assign,
    Action.take: _take,
    Action.submit_reply: _submit_reply,
    Action.approve_reply: _approve_reply,
    Action.reject_reply: _reject_reply,
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
    Action.close: rate,
    Action.reopen: reopen,
    Action.reopen_to_supervisor: reopen_to_supervisor,
    Action.withdraw: withdraw,
    Action.add_information: add_information,
}
