"""Deadline policies and deadline arithmetic. The calendar is a replaceable part."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import and_, not_, or_
from sqlmodel import col

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.lifecycle import OPEN

_DURATION = re.compile(r"^(\d{1,6})([mhd])$")
# A year at most, in any unit: longer is a typo, and would run the calendar search to its end.
MAX_AMOUNT = {"m": 366 * 24 * 60, "h": 366 * 24, "d": 366}


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # "m" minutes, "h" hours, "d" days; on a working clock hours and days are working ones

    @classmethod
    def parse(cls, text: str) -> "Duration":
        match = _DURATION.match(text.strip())
        if not match:
            raise ValueError(f"bad duration {text!r}: expected a number and m, h or d, like '2h'")
        amount, unit = int(match.group(1)), match.group(2)
        if amount > MAX_AMOUNT[unit]:
            raise ValueError(f"duration {text!r} is longer than a year (at most {MAX_AMOUNT[unit]}{unit})")
        return cls(amount, unit)


@dataclass(frozen=True)
class Policy:
    appeal_type: str | None
    priority: str
    category_code: str | None
    clock: str  # "wall" or "working"
    accept: Duration
    contact: Duration | None
    resolve: Duration | None  # None only on a reopen policy: the appeal's own resolve length


# The policies of a reopened appeal (重办) carry this in place of a priority; `resolve: original`
# in the file keeps the length the appeal had the first time.
REOPENED = "reopened"
ORIGINAL = "original"


@dataclass(frozen=True)
class Deadlines:
    accept_due_at: datetime
    contact_due_at: datetime | None
    resolve_due_at: datetime
    working: bool = False  # on the working clock, or the wall clock


class Calendar(Protocol):
    def add(self, start: datetime, duration: Duration, *, working: bool) -> datetime: ...


def policy_for(policies: list[Policy], appeal_type: str, priority: str, lineage: list[str]) -> Policy:
    """The most specific policy: a category override (nearest category first), then the type, then any."""

    def rank(p: Policy) -> tuple[int, int] | None:
        if p.priority != priority or p.appeal_type not in (None, appeal_type):
            return None
        if p.category_code is not None and p.category_code not in lineage:
            return None
        category_rank = len(lineage) - lineage.index(p.category_code) if p.category_code else 0
        return category_rank, p.appeal_type is not None

    ranked = [(r, p) for p in policies if (r := rank(p)) is not None]
    if not ranked:
        raise LookupError(f"no deadline policy for {appeal_type}/{priority}")
    return max(ranked, key=lambda rp: rp[0])[1]


def deadlines_for(policy: Policy, start: datetime, calendar: Calendar) -> Deadlines:
    """The three deadlines of a policy, counted from `start` on its clock."""
    assert policy.resolve is not None, "a reopen policy goes through reopen_deadlines"
    working = policy.clock == "working"
    return Deadlines(
        accept_due_at=calendar.add(start, policy.accept, working=working),
        contact_due_at=calendar.add(start, policy.contact, working=working) if policy.contact else None,
        resolve_due_at=calendar.add(start, policy.resolve, working=working),
        working=working,
    )


# Without a reopen policy in the file: a working day to accept and to contact, the original resolve.
DEFAULT_REOPEN = Policy(None, REOPENED, None, "working", Duration(1, "d"), Duration(1, "d"), None)


def reopen_deadlines(policies: list[Policy], appeal_type: str, priority: str, lineage: list[str],
                     start: datetime, calendar: Calendar) -> Deadlines:
    """重办: the reopen policy's limits on its clock (working days, so a rating at 23:37 does not give
    the department 30 minutes of night), and the appeal's own resolve length unless the policy names one."""
    try:
        reopen = policy_for(policies, appeal_type, REOPENED, lineage)
    except LookupError:
        reopen = DEFAULT_REOPEN
    working = reopen.clock == "working"
    if reopen.resolve is not None:
        resolve = calendar.add(start, reopen.resolve, working=working)
    else:
        original = policy_for(policies, appeal_type, priority, lineage)
        resolve = calendar.add(start, original.resolve or DEFAULT_REOPEN.accept, working=original.clock == "working")
    accept = calendar.add(start, reopen.accept, working=working)
    contact = calendar.add(start, reopen.contact, working=working) if reopen.contact else None
    return Deadlines(accept_due_at=accept, contact_due_at=contact, resolve_due_at=max(resolve, accept),
                     working=working)


# "Overdue", defined once for the queue's flag, its `?overdue=` filter and supervision: still open,
# past the resolve deadline, and not waiting on the requester (a paused clock is not running late).
def is_overdue(appeal, now: datetime) -> bool:
    return bool(appeal.status in OPEN and appeal.paused_at is None and appeal.resolve_due_at is not None
                and appeal.resolve_due_at < now)


def overdue_condition(now: datetime, *, overdue: bool = True):
    """The same definition as a WHERE clause (or its exact complement with overdue=False)."""
    late = and_(col(Appeal.status).in_(OPEN), col(Appeal.paused_at).is_(None), col(Appeal.resolve_due_at).is_not(None),
                col(Appeal.resolve_due_at) < now)
    if overdue:
        return late
    return or_(col(Appeal.status).not_in(OPEN), col(Appeal.paused_at).is_not(None),
               col(Appeal.resolve_due_at).is_(None), not_(col(Appeal.resolve_due_at) < now))
