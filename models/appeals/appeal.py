"""The appeal, its append-only history, and the keys that make intake retries safe."""

from datetime import datetime

from sqlalchemy import JSON, Column, Index, String, text
from sqlmodel import Field, SQLModel

from appealflow.models.appeals.enums import OPEN_STATUSES, AppealStatus, ExtensionStatus
from appealflow.models.storage.columns import UTCDateTime, utcnow

OPEN_CONDITION = f"status IN ({', '.join(repr(s.value) for s in OPEN_STATUSES)})"


def _ts(nullable: bool = True, index: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class Appeal(SQLModel, table=True):
    __table_args__ = (
        Index("ix_appeal_status_id", "status", "id"),
        Index("ix_appeal_department_status", "department_code", "status"),
        Index("ix_appeal_replied", "status", "replied_at"),
        # The handler's queue: their department's open appeals, nearest running deadline first.
        # Partial, so the years of closed appeals a city keeps cost it nothing.
        Index("ix_appeal_queue", "department_code", "next_due_at", "id",
              postgresql_where=text(OPEN_CONDITION), sqlite_where=text(OPEN_CONDITION)),
        Index("ix_appeal_assignee", "assignee", "status"),
        Index("ix_appeal_requester_phone", "requester_phone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True)
    channel: str = Field(max_length=20)
    appeal_type: str = Field(max_length=20)
    priority: str = Field(max_length=10)
    category_code: str | None = Field(default=None, foreign_key="category.code", max_length=60)
    title: str = Field(max_length=200)
    text: str = Field(max_length=5000)
    district: str | None = Field(default=None, max_length=40)
    street: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)
    # The spot, where the citizen's phone gave it ("use my location") or an Open311 app sent lat/long.
    latitude: float | None = None
    longitude: float | None = None
    position_accuracy_m: float | None = None
    requester_name: str | None = Field(default=None, max_length=100)
    requester_phone: str | None = Field(default=None, max_length=30)
    requester_email: str | None = Field(default=None, max_length=254)
    operator_id: str | None = Field(default=None, max_length=64)
    # What the requester reads: every message and their tracking view ("zh" or "en").
    language: str = Field(default="zh", max_length=10)
    # No phone and no e-mail: no message goes to the requester; the code and link are theirs to follow.
    anonymous: bool = Field(default=False)
    # The requester asked that the department not see their name (where the city allows it).
    name_withheld: bool = Field(default=False)
    # The version of the privacy notice the requester agreed to when filing (None: filed elsewhere).
    privacy_notice: str | None = Field(default=None, max_length=20)

    status: str = Field(max_length=20)
    department_code: str | None = Field(default=None, foreign_key="department.code", max_length=40)
    routing_confidence: float | None = None
    routing_reason: str | None = Field(default=None, max_length=500)

    received_at: datetime = Field(sa_column=_ts(nullable=False))
    dispatched_at: datetime | None = Field(default=None, sa_column=_ts())
    accept_due_at: datetime | None = Field(default=None, sa_column=_ts())
    contact_due_at: datetime | None = Field(default=None, sa_column=_ts())
    resolve_due_at: datetime | None = Field(default=None, sa_column=_ts())
    # The nearest deadline of a clock still running (see `next_due`): what the queue sorts by.
    next_due_at: datetime | None = Field(default=None, sa_column=_ts())
    # The handler who owns it within the department (None: the department's mailbox).
    assignee: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    # A dispatch worker's claim; a claim that outlives its lease belongs to a dead worker.
    claimed_until: datetime | None = Field(default=None, sa_column=_ts())
    claimed_by: str | None = Field(default=None, max_length=100)  # the worker (host:pid), to free it when it dies
    # While waiting on the requester the clocks stop; resuming moves every deadline by the pause.
    paused_at: datetime | None = Field(default=None, sa_column=_ts())
    return_count: int = Field(default=0)
    # The requester's rating of the reply (回访): solved or not, and how satisfied.
    rated_solved: bool | None = None
    rated_satisfaction: str | None = Field(default=None, max_length=20)
    rated_at: datetime | None = Field(default=None, sa_column=_ts())
    replied_at: datetime | None = Field(default=None, sa_column=_ts())  # unrated past a limit: closed
    reopen_count: int = Field(default=0)  # the second unsatisfied rating goes to a supervisor
    parent_id: int | None = Field(default=None, foreign_key="appeal.id")
    version: int = Field(default=1)


# Which clocks still run in each status: accepting, first contact and resolving are met in turn.
RUNNING_CLOCKS: dict[str, tuple[str, ...]] = {
    AppealStatus.dispatched: ("accept_due_at", "contact_due_at", "resolve_due_at"),
    AppealStatus.accepted: ("contact_due_at", "resolve_due_at"),
    AppealStatus.in_progress: ("resolve_due_at",),
    AppealStatus.reviewing: ("resolve_due_at",),
    # Paused: nothing runs, and resuming moves the deadline; it keeps its place by the resolve one.
    AppealStatus.waiting_requester: ("resolve_due_at",),
}


def next_due(status: str, deadlines: dict) -> datetime | None:
    """The nearest deadline of the clocks running in `status`, from the three due columns."""
    running = [deadlines.get(c) for c in RUNNING_CLOCKS.get(status, ())]
    return min((d for d in running if d is not None), default=None)


class AppealAssist(SQLModel, table=True):
    """An assisting department (协办) on an appeal."""

    __tablename__ = "appeal_assist"
    __table_args__ = (Index("ix_appeal_assist_department", "department_code", "appeal_id"),)

    appeal_id: int = Field(foreign_key="appeal.id", primary_key=True)
    department_code: str = Field(foreign_key="department.code", primary_key=True, max_length=40)


class AppealEvent(SQLModel, table=True):
    """One state change or action on an appeal. Rows are only ever inserted."""

    __tablename__ = "appeal_event"

    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    kind: str = Field(max_length=30)
    actor: str = Field(max_length=100)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_key"

    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    appeal_id: int = Field(foreign_key="appeal.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class ExtensionRequest(SQLModel, table=True):
    """A handler's request for more time (延期), decided by a supervisor."""

    __tablename__ = "extension_request"

    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    requested_by: str = Field(max_length=100)
    reason: str = Field(max_length=1000)
    extra: str = Field(max_length=10)
    status: ExtensionStatus = Field(default=ExtensionStatus.pending, sa_type=String(10))
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = Field(default=None, sa_column=_ts())
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
