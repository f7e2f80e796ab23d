"""Deadline clocks and escalation tiers: warning when most of the time is used, breach at the
deadline, severe when long past or breached twice (督办). Each tier fires once per clock.

Every clock row carries the moment its next tier is due, indexed, so a sweep reads what is due and
nothing else, however many appeals are open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Column, Index, String, UniqueConstraint, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel, col

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import ClockState
from appealflow.models.city.department import Department
from appealflow.models.clocks.calendar import WorkingCalendar
from appealflow.models.clocks.deadlines import Deadlines
from appealflow.models.storage.columns import UTCDateTime
from appealflow.models.telling.audience import Assignee, Event, Message, assignees, messages_for, when
from appealflow.models.telling.outbox import write

WARN_AT = 0.8        # of the clock's time used
SEVERE_AFTER = 0.5   # of the clock's length again, past the deadline


class Tier(StrEnum):
    warning = "warning"
    breach = "breach"
    severe = "severe"


TIERS = (Tier.warning, Tier.breach, Tier.severe)
TIER_COLUMN = {Tier.warning: "warn_at", Tier.breach: "due_at", Tier.severe: "severe_at"}


class DeadlineClock(SQLModel, table=True):
    """One running clock of one appeal (accept, contact, resolve) with its tier times."""

    __tablename__ = "deadline_clock"
    __table_args__ = (
        Index("ix_deadline_clock_next", "next_tier_at", postgresql_where=text("next_tier_at IS NOT NULL"),
              sqlite_where=text("next_tier_at IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    clock: str = Field(max_length=10)
    state: ClockState = Field(default=ClockState.running, sa_type=String(10))
    working: bool = True
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    warn_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    severe_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_tier: str | None = Field(default=None, max_length=10)  # None: every tier fired
    next_tier_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))  # None: not running


class Escalation(SQLModel, table=True):
    """A tier that fired. The unique key is what makes 'once per clock' hold under racing sweeps."""

    __table_args__ = (UniqueConstraint("clock_id", "tier"),)

    id: int | None = Field(default=None, primary_key=True)
    clock_id: int = Field(foreign_key="deadline_clock.id")
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    clock: str = Field(max_length=10)
    tier: str = Field(max_length=10)
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    fired_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


def tier_times(started: datetime, due: datetime, *, working: bool, calendar: WorkingCalendar) -> dict:
    if working:
        length = calendar.working_minutes_between(started, due)
        warn = calendar.add_working_minutes(started, int(length * WARN_AT))
        severe = calendar.add_working_minutes(due, max(60, int(length * SEVERE_AFTER)))
    else:
        minutes = (due - started).total_seconds() / 60
        warn = started + timedelta(minutes=minutes * WARN_AT)
        severe = due + timedelta(minutes=max(60, minutes * SEVERE_AFTER))
    return {"warn_at": warn, "due_at": due, "severe_at": severe}


def clock_rows(appeal_id: int, deadlines: Deadlines, started: datetime, calendar: WorkingCalendar) -> list[dict]:
    rows = []
    for clock, due in (("accept", deadlines.accept_due_at), ("contact", deadlines.contact_due_at),
                       ("resolve", deadlines.resolve_due_at)):
        if due is None:
            continue
        times = tier_times(started, due, working=deadlines.working, calendar=calendar)
        rows.append(dict(appeal_id=appeal_id, clock=clock, working=deadlines.working, started_at=started,
                         next_tier=Tier.warning, next_tier_at=times["warn_at"], **times))
    return rows


def start_clocks(session: Session, rows: list[dict]) -> None:
    """Start clocks for dispatched appeals; a re-dispatch stops the old ones, which keep their history."""
    if not rows:
        return
    appeal_ids = {r["appeal_id"] for r in rows}
    session.execute(update(DeadlineClock)
                    .where(col(DeadlineClock.appeal_id).in_(appeal_ids), col(DeadlineClock.state) != ClockState.stopped)
                    .values(state=ClockState.stopped, next_tier_at=None))
    session.execute(insert(DeadlineClock), rows)


def stop_clocks(session: Session, appeal_id: int, clocks: tuple[str, ...] | None = None) -> None:
    """The clocks are satisfied, or the appeal left the department: no tier fires any more."""
    query = update(DeadlineClock).where(col(DeadlineClock.appeal_id) == appeal_id,
                                        col(DeadlineClock.state) != ClockState.stopped)
    if clocks:
        query = query.where(col(DeadlineClock.clock).in_(clocks))
    session.execute(query.values(state=ClockState.stopped, next_tier_at=None))


def pause_clocks(session: Session, appeal_id: int) -> None:
    session.execute(update(DeadlineClock).where(col(DeadlineClock.appeal_id) == appeal_id,
                                                col(DeadlineClock.state) == ClockState.running)
                    .values(state=ClockState.paused, next_tier_at=None))


def shifted_by_pause(moment: datetime, *, paused_at: datetime, now: datetime, working: bool,
                     calendar: WorkingCalendar) -> datetime:
    """A deadline moved on by the time spent waiting on the requester (working time on a working
    clock). The appeal's deadlines and its clocks' tiers move by this one rule."""
    if working:
        return calendar.add_working_time(moment, calendar.working_time_between(paused_at, now))
    return moment + (now - paused_at)


def resume_clocks(session: Session, appeal_id: int, paused_at: datetime, now: datetime,
                  calendar: WorkingCalendar) -> None:
    """Move every tier of the paused clocks by the time spent waiting on the requester."""
    paused = session.execute(select(DeadlineClock).where(col(DeadlineClock.appeal_id) == appeal_id,
                                                         col(DeadlineClock.state) == ClockState.paused)).scalars().all()
    for row in paused:
        moved = {name: shifted_by_pause(getattr(row, name), paused_at=paused_at, now=now, working=row.working,
                                        calendar=calendar) for name in TIER_COLUMN.values()}
        next_at = moved[TIER_COLUMN[Tier(row.next_tier)]] if row.next_tier else None
        session.execute(update(DeadlineClock).where(col(DeadlineClock.id) == row.id).values(
            **moved, state=ClockState.running, next_tier_at=next_at))


def paused_on_working_clock(session: Session, appeal_id: int) -> bool:
    return bool(session.execute(select(col(DeadlineClock.working)).where(
        col(DeadlineClock.appeal_id) == appeal_id, col(DeadlineClock.state) == ClockState.paused).limit(1)).scalar())


def extended_clocks(session: Session, appeal_id: int, due: datetime, calendar: WorkingCalendar) -> list[dict]:
    """The appeal's clocks after an approved extension: the resolve clock starts over toward its new
    deadline (a tier it fired before may fire again: missing an extended deadline is news)."""
    rows = []
    for clock in session.execute(select(DeadlineClock).where(col(DeadlineClock.appeal_id) == appeal_id,
                                                             col(DeadlineClock.state) != ClockState.stopped)).scalars():
        new_due = due if clock.clock == "resolve" else clock.due_at
        times = tier_times(clock.started_at, new_due, working=clock.working, calendar=calendar)
        first = Tier.warning if clock.clock == "resolve" else (Tier(clock.next_tier) if clock.next_tier else None)
        running = clock.state == ClockState.running
        rows.append(dict(appeal_id=appeal_id, clock=clock.clock, working=clock.working, started_at=clock.started_at,
                         state=clock.state, next_tier=first,
                         next_tier_at=times[TIER_COLUMN[first]] if first and running else None, **times))
    return rows


@dataclass
class SweepResult:
    clocks: int = 0
    fired: dict = field(default_factory=lambda: {t.value: 0 for t in TIERS})


def _insert_new(session: Session, rows: list[dict]) -> set[tuple[int, str]]:
    """Insert the escalations not there yet, in one statement; return the (clock, tier) pairs it
    inserted. A racing sweep's rows are skipped by the unique key, so each tier fires once."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(Escalation).values(rows)
    inserted = session.execute(statement.on_conflict_do_nothing()
                               .returning(col(Escalation.clock_id), col(Escalation.tier))).all()
    return {(clock_id, tier) for clock_id, tier in inserted}


def sweep_batch(session: Session, *, now: datetime, limit: int = 500) -> SweepResult:
    """Fire the tiers due by `now` for up to `limit` clocks; the caller commits. Safe to repeat and
    to run beside another sweep: rows are locked and skipped, and each tier is inserted once."""
    result = SweepResult()
    clocks = session.execute(
        select(DeadlineClock).where(col(DeadlineClock.next_tier_at) <= now)
        .order_by(col(DeadlineClock.next_tier_at)).limit(limit).with_for_update(skip_locked=True)
    ).scalars().all()
    if not clocks:
        return result
    result.clocks = len(clocks)
    appeals = {a.id: a for a in session.execute(
        select(Appeal).where(col(Appeal.id).in_({c.appeal_id for c in clocks}))).scalars()}
    breached_before = set(session.execute(select(col(Escalation.appeal_id)).where(
        col(Escalation.appeal_id).in_(appeals), col(Escalation.tier) == Tier.breach)).scalars())
    candidates, moves = [], []
    for clock in clocks:
        next_tier = None
        for tier in TIERS[TIERS.index(Tier(clock.next_tier)):]:
            twice = tier == Tier.severe and clock.appeal_id in breached_before and clock.due_at <= now
            if getattr(clock, TIER_COLUMN[tier]) > now and not twice:
                next_tier = tier
                break
            candidates.append(dict(clock_id=clock.id, appeal_id=clock.appeal_id, clock=clock.clock, tier=tier.value,
                                   due_at=clock.due_at, fired_at=now))
            if tier == Tier.breach:
                breached_before.add(clock.appeal_id)
        moves.append({"b_id": clock.id, "b_tier": next_tier,
                      "b_at": getattr(clock, TIER_COLUMN[next_tier]) if next_tier else None})
    fired = _insert_new(session, candidates)
    departments = {d.code: d for d in session.execute(select(Department)).scalars()} if fired else {}
    owners = assignees(session, [appeals[row["appeal_id"]].assignee for row in candidates]) if fired else {}
    by_id = {clock.id: clock for clock in clocks}
    events: list[dict] = []
    messages: list[Message] = []
    for row in candidates:
        if (row["clock_id"], row["tier"]) not in fired:
            continue
        tier, clock, appeal = Tier(row["tier"]), by_id[row["clock_id"]], appeals[row["appeal_id"]]
        result.fired[tier.value] += 1
        events.append(dict(appeal_id=appeal.id, kind=f"escalation_{tier.value}", actor="system:escalation", at=now,
                           from_status=appeal.status, to_status=appeal.status,
                           detail={"clock": clock.clock, "due_at": clock.due_at.isoformat()}))
        messages += _notices(appeal, clock, tier, departments, owners.get(appeal.assignee or ""))
    table = SQLModel.metadata.tables["deadline_clock"]
    session.execute(update(table).where(table.c.id == bindparam("b_id"))
                    .values(next_tier=bindparam("b_tier"), next_tier_at=bindparam("b_at")), moves)
    if events:
        session.execute(insert(AppealEvent), events)
    write(session, messages, now=now)
    return result


def _notices(appeal: Appeal, clock: DeadlineClock, tier: Tier, departments: dict,
             assignee: Assignee | None) -> list[Message]:
    """Warning: the handling department. Breach: also the supervision centre (and the department's
    head, who reads the department's inbox). Severe: also the level above the department."""
    return messages_for(Event(f"escalation_{tier.value}"), appeal, key=f"{clock.id}:{tier.value}",
                        departments=departments, facts=dict(clock=clock.clock, due=when(clock.due_at)),
                        assignee=assignee)
