"""Work queues: what a member of staff has to do next, nearest deadline first, paged by keyset."""

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select, tuple_, union_all
from sqlmodel import Session, col

from appealflow.models.appeals.access import DISPATCHER_STATUSES, department_scopes, readable_condition
from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import DEPARTMENT_ROLES, AppealStatus, Role
from appealflow.models.appeals.lifecycle import OPEN
from appealflow.models.city.people import Staff
from appealflow.models.clocks.deadlines import overdue_condition
from appealflow.models.refusal import Refused
from appealflow.models.storage.columns import UTCDateTime

SUPERVISED = (*OPEN, AppealStatus.arbitration, *DISPATCHER_STATUSES)


class Owner(StrEnum):
    mine = "mine"              # given to me
    unassigned = "unassigned"  # still in the department's mailbox


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    category: str | None = None
    overdue: bool | None = None
    text: str | None = None
    owner: Owner | None = None


def personal_scope(staff: Staff) -> ColumnElement[bool]:
    """Where this member of staff may search by the requester's phone or name: only where they see
    them unmasked (the handling department) or took the call themselves (the operator), so a search
    cannot tell anyone else whose number an appeal holds."""
    if staff.role in DEPARTMENT_ROLES:
        return col(Appeal.department_code) == (staff.department_code or "")
    if staff.role == Role.operator:
        return col(Appeal.operator_id) == staff.username
    return false()


def search_condition(staff: Staff, text: str) -> ColumnElement[bool]:
    """A code or its tail, the requester's phone (whole or its last digits) or name, or words of the
    title or text."""
    wanted = text.strip().replace("%", "").replace("_", "")
    pattern = f"%{wanted}%"
    found: list[ColumnElement[bool]] = [col(Appeal.code) == wanted.upper(), col(Appeal.title).ilike(pattern),
                                        col(Appeal.text).ilike(pattern)]
    tail = wanted.upper().replace("-", "")
    if len(tail) >= 4 and tail.isalnum() and tail.isascii():
        found.append(col(Appeal.code).like(f"%{tail}"))
    # A name the requester kept from the department is not found by it either.
    personal: list[ColumnElement[bool]] = [and_(col(Appeal.requester_name) == wanted,
                                                col(Appeal.name_withheld).is_(False))]
    digits = "".join(ch for ch in wanted if ch.isdigit())
    if len(digits) >= 4 and len(digits) >= len(wanted.replace(" ", "").replace("-", "").lstrip("+")):
        personal.append(col(Appeal.requester_phone).like(f"%{digits}"))
    found.append(and_(personal_scope(staff), or_(*personal)))
    return or_(*found)


class BadCursor(Refused, ValueError):
    """A queue cursor that is not one this server gave out."""

    where = "query"

    def __init__(self, message: str):
        super().__init__(message, field="cursor")


def _default_statuses(staff: Staff) -> tuple[str, ...]:
    if staff.role in DEPARTMENT_ROLES:
        return OPEN
    if staff.role == Role.dispatcher:
        return DISPATCHER_STATUSES
    return SUPERVISED


def _sort_column(staff: Staff):
    if staff.role in DEPARTMENT_ROLES:
        # The nearest deadline of a clock still running: set by every move, indexed with the department.
        return col(Appeal.next_due_at)
    if staff.role == Role.dispatcher:
        return col(Appeal.received_at)
    return func.coalesce(col(Appeal.next_due_at), col(Appeal.received_at))


def queue_statement(staff: Staff, wanted: QueueFilter, *, now: datetime, after: tuple | None, limit: int) -> Select:
    statuses = tuple(s for s in (wanted.statuses or _default_statuses(staff)) if s in _default_statuses(staff))
    sort = _sort_column(staff)
    conditions: list[ColumnElement[bool]] = [col(Appeal.status).in_(statuses)]
    if wanted.category:
        conditions.append(col(Appeal.category_code) == wanted.category)
    if wanted.overdue is not None:
        conditions.append(overdue_condition(now, overdue=wanted.overdue))
    if wanted.text and wanted.text.strip():
        conditions.append(search_condition(staff, wanted.text))
    if wanted.owner == Owner.mine:
        conditions.append(col(Appeal.assignee) == staff.username)
    elif wanted.owner == Owner.unassigned:
        conditions.append(col(Appeal.assignee).is_(None))
    if after is not None:
        key = tuple_(literal(after[0], UTCDateTime()), literal(after[1]))
        conditions.append(and_(sort.is_not(None), tuple_(sort, col(Appeal.id)) > key))
    if staff.role not in DEPARTMENT_ROLES:
        return select(Appeal).where(readable_condition(staff), *conditions).order_by(sort, col(Appeal.id)).limit(limit)
    # The department's readable scopes one by one, each read in deadline order from its index,
    # then merged: one OR over both would make the database scan every appeal.
    handled, assisted = department_scopes(staff.department_code or "")
    pages = []
    for scope in (handled, and_(assisted, or_(col(Appeal.department_code).is_(None), ~handled))):
        page = (select(col(Appeal.id), sort.label("due")).where(scope, *conditions)
                .order_by(sort, col(Appeal.id)).limit(limit).subquery())
        pages.append(select(page.c.id, page.c.due))
    merged = union_all(*pages).subquery()
    return (select(Appeal).join(merged, merged.c.id == col(Appeal.id))
            .order_by(merged.c.due, col(Appeal.id)).limit(limit))


def page(session: Session, staff: Staff, wanted: QueueFilter, *, now: datetime, cursor: str | None,
         limit: int) -> tuple[list[Appeal], str | None]:
    """One page of the queue and the cursor of the next, or None at the end."""
    after = decode_cursor(cursor) if cursor else None
    rows = list(session.execute(queue_statement(staff, wanted, now=now, after=after, limit=limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    if not more:
        return rows, None
    last = rows[-1]
    key = last.next_due_at if staff.role in DEPARTMENT_ROLES else (
        last.received_at if staff.role == Role.dispatcher else (last.next_due_at or last.received_at))
    if key is None:  # an open appeal always has a running deadline; a row without one ends the queue
        return rows, None
    return rows, encode_cursor(key, last.id)


def encode_cursor(key: datetime, appeal_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([key.isoformat(), appeal_id]).encode()).decode()


MAX_ID = 2**31 - 1  # appeal ids are 32-bit integers in the database


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor names; anything this queue did not give out is a BadCursor, whatever
    it decodes to (a naive time, a huge id, a year the zone cannot shift)."""
    try:
        key, appeal_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        moment = datetime.fromisoformat(key)
        if moment.tzinfo is None or type(appeal_id) is not int or not 0 < appeal_id <= MAX_ID:
            raise ValueError("out of range")
        return moment.astimezone(UTC), appeal_id
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise BadCursor("not a cursor this queue gave out") from error


def review_waits(session: Session, appeal_ids: list[int]) -> dict[int, datetime]:
    """Since when each of these appeals' replies has waited for review (its newest submission)."""
    if not appeal_ids:
        return {}
    rows = session.execute(select(col(AppealEvent.appeal_id), func.max(col(AppealEvent.at)))
                           .where(col(AppealEvent.appeal_id).in_(appeal_ids), col(AppealEvent.kind) == "submit_reply")
                           .group_by(col(AppealEvent.appeal_id)))
    return {appeal_id: at for appeal_id, at in rows}
