"""The appeal state machine: one table of allowed transitions, and the one place that applies them."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from models.appeal import Appeal, AppealEvent
from models.enums import AppealStatus as S


class Action(StrEnum):
    receive = "receive"
    route = "route"                 # automatic dispatch by the catalogue
    triage = "triage"               # routing could not place it with confidence
    dispatch = "dispatch"           # a dispatcher places it by hand
    answer_on_spot = "answer_on_spot"
    merge = "merge"
    invalidate = "invalidate"
    accept = "accept"
    contact = "contact"
    request_info = "request_info"
    info_received = "info_received"
    reply = "reply"
    return_ = "return"
    close = "close"
    reopen = "reopen"


TRANSITIONS: dict[tuple[S, Action], S] = {
    (S.received, Action.route): S.dispatched,
    (S.received, Action.triage): S.triage,
    (S.received, Action.answer_on_spot): S.replied,
    (S.received, Action.merge): S.merged,
    (S.received, Action.invalidate): S.closed,
    (S.triage, Action.dispatch): S.dispatched,
    (S.triage, Action.merge): S.merged,
    (S.triage, Action.invalidate): S.closed,
    (S.returned, Action.dispatch): S.dispatched,
    (S.returned, Action.merge): S.merged,
    (S.returned, Action.invalidate): S.closed,
    (S.dispatched, Action.accept): S.accepted,
    (S.dispatched, Action.return_): S.returned,
    (S.accepted, Action.contact): S.in_progress,
    (S.accepted, Action.return_): S.returned,
    (S.accepted, Action.request_info): S.waiting_requester,
    (S.in_progress, Action.request_info): S.waiting_requester,
    (S.waiting_requester, Action.info_received): S.in_progress,
    (S.in_progress, Action.reply): S.replied,
    (S.replied, Action.close): S.closed,
    (S.replied, Action.reopen): S.reopened,
    (S.reopened, Action.dispatch): S.dispatched,
}


class IllegalTransition(Exception):
    def __init__(self, status: str, action: Action):
        super().__init__(f"cannot {action.value} an appeal that is {status}")
        self.status = status
        self.action = action


def next_status(status: str, action: Action) -> S:
    try:
        return TRANSITIONS[(S(status), action)]
    except KeyError:
        raise IllegalTransition(status, action) from None


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

    A transition whose appeal has moved on (another worker, a retried job) changes nothing. The
    rows are locked and checked first, then updated in one executemany per kind of change, each
    UPDATE still guarded by status and version. The caller owns the transaction.
    """
    if not transitions:
        return []
    wanted = {t.appeal_id: t for t in transitions}
    current = session.execute(
        select(Appeal.id, Appeal.status, Appeal.version).where(Appeal.id.in_(wanted)).with_for_update()
    ).all()
    applied = [wanted[id_] for id_, status, version in current
               if (status, version) == (wanted[id_].from_status, wanted[id_].version)]
    by_columns: dict[tuple[str, ...], list[dict]] = defaultdict(list)
    events: list[dict] = []
    for t in applied:
        to_status = next_status(t.from_status, t.action)
        by_columns[tuple(sorted(t.changes))].append(
            {"b_id": t.appeal_id, "b_from": t.from_status, "b_version": t.version, "b_to": to_status,
             "b_next": t.version + 1, "b_now": now, **{f"b_{k}": v for k, v in t.changes.items()}})
        events.append(dict(appeal_id=t.appeal_id, kind=t.action.value, actor=t.actor, at=now,
                           from_status=t.from_status, to_status=to_status, detail=t.detail))
    table = Appeal.__table__
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
