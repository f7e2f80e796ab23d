"""The appeal state machine: one table of allowed transitions, who may make each, and the one
place that applies them."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session, SQLModel, col

from appealflow.models.appeals.appeal import Appeal, AppealEvent, next_due
from appealflow.models.appeals.enums import CENTRE_ROLES, DEPARTMENT_ROLES, OPEN_STATUSES, Role
from appealflow.models.appeals.enums import AppealStatus as S
from appealflow.models.refusal import Kind, Refused


class Action(StrEnum):
    route = "route"                    # automatic dispatch by the catalogue
    triage = "triage"                  # routing could not place it with confidence
    dispatch = "dispatch"              # a dispatcher (or supervisor) places it by hand
    merge = "merge"                    # a duplicate joins its parent
    invalidate = "invalidate"
    accept = "accept"                  # 签收
    contact = "contact"                # first contact with the requester
    request_info = "request_info"      # the clock stops until the requester answers
    info_received = "info_received"
    reply = "reply"                    # 办结
    submit_reply = "submit_reply"      # a reply where the department reviews: it waits for the head (审核)
    approve_reply = "approve_reply"    # the head approves: the reply reaches the requester
    reject_reply = "reject_reply"      # the head returns it to the handler with a reason
    assign = "assign"                  # the head gives the appeal to one handler
    take = "take"                      # a handler takes an unassigned appeal of their department
    record_contact = "record_contact"  # a later contact: method, time, outcome, note
    return_ = "return"                 # 退单: not ours
    return_to_supervisor = "return_to_supervisor"  # the third return: a supervisor arbitrates
    request_extension = "request_extension"        # 延期
    decide_extension = "decide_extension"
    add_assist = "add_assist"          # 协办
    note = "note"
    close = "close"
    reopen = "reopen"                  # 重办: unsatisfied, back to the same department
    reopen_to_supervisor = "reopen_to_supervisor"  # unsatisfied a second time: a supervisor decides
    withdraw = "withdraw"              # the requester no longer needs an answer
    add_information = "add_information"  # the requester adds something unasked; nothing pauses
    answer = "answer"                  # 当场答复: a consultation answered from the policy base at once
    release = "release"                # the appeal it was merged into closed unanswered: back to triage


DEPARTMENT = DEPARTMENT_ROLES
CENTRE = CENTRE_ROLES
SYSTEM = frozenset({Role.system})
OPEN = OPEN_STATUSES


@dataclass(frozen=True)
class Step:
    to: S | None  # None: the status stays as it is
    roles: frozenset[Role]


def _rows() -> dict[tuple[S, Action], Step]:
    table: dict[tuple[S, Action], Step] = {}

    def allow(sources, action: Action, to: S | None, roles) -> None:
        for source in (sources if isinstance(sources, tuple) else (sources,)):
            table[(source, action)] = Step(to, frozenset(roles))

    allow(S.received, Action.route, S.dispatched, SYSTEM)
    allow(S.received, Action.triage, S.triage, SYSTEM)
    allow((S.triage, S.returned, S.reopened), Action.dispatch, S.dispatched, CENTRE)
    allow(S.arbitration, Action.dispatch, S.dispatched, {Role.supervisor})
    allow((S.triage, S.returned), Action.merge, S.merged, {Role.dispatcher})
    allow((S.triage, S.returned), Action.invalidate, S.closed, {Role.dispatcher})
    allow(S.merged, Action.release, S.triage, SYSTEM)
    allow(S.dispatched, Action.accept, S.accepted, DEPARTMENT)
    allow((S.dispatched, S.accepted), Action.return_, S.returned, DEPARTMENT)
    allow((S.dispatched, S.accepted), Action.return_to_supervisor, S.arbitration, DEPARTMENT)
    allow(S.accepted, Action.contact, S.in_progress, DEPARTMENT)
    allow((S.accepted, S.in_progress), Action.request_info, S.waiting_requester, DEPARTMENT)
    allow(S.waiting_requester, Action.info_received, S.in_progress, DEPARTMENT | {Role.requester})
    allow(S.in_progress, Action.reply, S.replied, DEPARTMENT)
    allow(S.in_progress, Action.submit_reply, S.reviewing, DEPARTMENT)
    allow(S.reviewing, Action.approve_reply, S.replied, {Role.department_head})
    allow(S.reviewing, Action.reject_reply, S.in_progress, {Role.department_head})
    allow(OPEN, Action.assign, None, {Role.department_head})
    allow(OPEN, Action.take, None, DEPARTMENT)
    allow((S.in_progress, S.waiting_requester, S.reviewing), Action.record_contact, None, DEPARTMENT)
    # The operator who took the call, or a dispatcher, answers a consultation before any routing.
    allow((S.received, S.triage), Action.answer, S.replied, {Role.operator, Role.dispatcher})
    allow((S.accepted, S.in_progress, S.waiting_requester), Action.request_extension, None, DEPARTMENT)
    allow((S.accepted, S.in_progress, S.waiting_requester), Action.decide_extension, None, {Role.supervisor})
    allow(OPEN, Action.add_assist, None, DEPARTMENT)
    allow((*OPEN, S.triage, S.returned, S.arbitration, S.replied, S.reopened), Action.note, None,
          DEPARTMENT | CENTRE)
    allow(S.replied, Action.close, S.closed, SYSTEM | {Role.requester})
    allow(S.replied, Action.reopen, S.dispatched, {Role.requester})
    allow(S.replied, Action.reopen_to_supervisor, S.arbitration, {Role.requester})
    # Until the department has answered, the requester may withdraw or add to what they said.
    before_reply = (S.received, S.triage, *OPEN, S.returned, S.arbitration, S.reopened)
    allow((*before_reply, S.merged), Action.withdraw, S.closed, {Role.requester})
    allow(tuple(s for s in before_reply if s != S.waiting_requester), Action.add_information, None,
          {Role.requester})
    return table


TRANSITIONS = _rows()


class IllegalTransition(Refused):
    """The action is not one the appeal's status allows."""

    kind = Kind.conflict

    def __init__(self, status: str, action: Action, version: int | None = None):
        super().__init__(f"cannot {action.value} an appeal that is {status}")
        self.status = status
        self.action = action
        self.version = version

    def facts(self) -> dict:
        return {"status": self.status, "version": self.version}


class NotPermitted(Refused):
    """The role may not take this action at all."""

    kind = Kind.forbidden

    def __init__(self, role: Role, action: Action | str):
        super().__init__(f"a {role.value} may not {getattr(action, 'value', action)}")


MAX_RETURNS_BEFORE_ARBITRATION = 2
MAX_REOPENS_BEFORE_SUPERVISOR = 1


def as_taken(action: Action, return_count: int, reopen_count: int = 0, *, has_department: bool = True,
             reviewed: bool = False) -> Action:
    """The action a request really takes: a return past the limit goes to a supervisor (the third
    return of one appeal is a dispute, not a routing slip), and so does a second unsatisfied rating
    (the department had its second chance), or any unsatisfied rating of an answer no department
    gave (a consultation answered on the spot: a supervisor finds who should take it). A handler's
    reply in a department that reviews replies (`reviewed`) waits for the head's approval."""
    if action == Action.reply and reviewed:
        return Action.submit_reply
    if action == Action.return_ and return_count >= MAX_RETURNS_BEFORE_ARBITRATION:
        return Action.return_to_supervisor
    if action == Action.reopen and (reopen_count >= MAX_REOPENS_BEFORE_SUPERVISOR or not has_department):
        return Action.reopen_to_supervisor
    return action


def step(status: str, action: Action) -> Step:
    try:
        return TRANSITIONS[(S(status), action)]
    except KeyError:
        raise IllegalTransition(status, action) from None


def next_status(status: str, action: Action) -> S:
    return step(status, action).to or S(status)


def may(role: Role, action: Action) -> bool:
    """Whether the role may take the action in some status; the status decides the rest."""
    return any(role in s.roles for (_, a), s in TRANSITIONS.items() if a == action)


def check(role: Role, status: str, action: Action) -> Step:
    """The step, if `role` may take `action` now; the refusal that fits otherwise."""
    if not may(role, action):
        raise NotPermitted(role, action)
    found = step(status, action)
    if role not in found.roles:
        raise NotPermitted(role, action)
    return found


@dataclass(frozen=True)
class Transition:
    """A request to move one appeal, valid only if it is still in `from_status` at `version`."""

    appeal_id: int
    version: int
    from_status: str
    action: Action
    actor: str
    changes: dict = field(default_factory=dict)
    detail: dict = field(default_factory=dict)


def apply_transitions(session: Session, transitions: list[Transition], *, now: datetime) -> list[Transition]:
    """Apply each transition guarded in SQL; return those that took effect, with their events added.

    A transition whose appeal has moved on (another worker, a retried job, another handler) changes
    nothing. The rows are locked and checked first, then updated in one executemany per kind of
    change, each UPDATE still guarded by status and version. The caller owns the transaction.
    """
    if not transitions:
        return []
    wanted = {t.appeal_id: t for t in transitions}
    current = session.execute(
        select(col(Appeal.id), col(Appeal.status), col(Appeal.version), col(Appeal.accept_due_at),
               col(Appeal.contact_due_at), col(Appeal.resolve_due_at))
        .where(col(Appeal.id).in_(wanted)).with_for_update()
    ).all()
    applied = [wanted[row.id] for row in current
               if (row.status, row.version) == (wanted[row.id].from_status, wanted[row.id].version)]
    due_now = {row.id: row._asdict() for row in current}
    by_columns: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    events: list[dict] = []
    for t in applied:
        to_status = next_status(t.from_status, t.action)
        # Every move may start, meet or shift a clock: the queue's sort key follows in the same UPDATE.
        changes = t.changes | {"next_due_at": next_due(to_status, due_now[t.appeal_id] | t.changes)}
        by_columns[tuple(sorted(changes))].append(
            {"b_id": t.appeal_id, "b_from": t.from_status, "b_version": t.version, "b_to": to_status,
             "b_next": t.version + 1, "b_now": now, **{f"b_{k}": v for k, v in changes.items()}})
        events.append(dict(appeal_id=t.appeal_id, kind=t.action.value, actor=t.actor, at=now,
                           from_status=t.from_status, to_status=to_status, detail=t.detail))
    table = SQLModel.metadata.tables["appeal"]
    for columns, rows in by_columns.items():
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.status == bindparam("b_from"),
                   table.c.version == bindparam("b_version"))
            .values(status=bindparam("b_to"), version=bindparam("b_next"), updated_at=bindparam("b_now"),
                    **{c: bindparam(f"b_{c}") for c in columns}),
            rows,
        )
    if events:
        session.execute(insert(AppealEvent), events)
    return applied
