"""The workbench: queues, appeal details and actions for staff; every lookup goes through the
readable-appeals query, so what a member of staff may not see is not found."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from appealflow.api.auth import CurrentStaff
from appealflow.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from appealflow.api.schemas import CODE_PATTERN, Event
from appealflow.models.appeals.access import readable_appeals, requester_view
from appealflow.models.appeals.appeal import Appeal, AppealAssist, ExtensionRequest
from appealflow.models.appeals.enums import AppealStatus, Role
from appealflow.models.appeals.intake import history, release_hold
from appealflow.models.appeals.lifecycle import Action, NotPermitted
from appealflow.models.appeals.queue import QueueFilter, page
from appealflow.models.appeals.steps import ActionInput, StaleVersion
from appealflow.models.appeals.workbench import act
from appealflow.models.city.people import Staff
from appealflow.models.clocks.calendar import load_calendar
from appealflow.models.clocks.deadlines import is_overdue
from appealflow.models.storage.columns import utcnow
from appealflow.workers.queues import DELIVERY, DISPATCH

router = APIRouter(tags=["workbench"])
MAX_INT = 2**31 - 1  # ids and versions are 32-bit integers in the database
Code = Annotated[str, Path(pattern=CODE_PATTERN)]


class QueueItem(BaseModel):
    code: str
    status: str
    version: int
    type: str
    priority: str
    category: str | None
    title: str
    department: str | None
    district: str | None
    street: str | None
    received_at: datetime
    accept_due_at: datetime | None
    resolve_due_at: datetime | None
    overdue: bool


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None


class AppealDetail(QueueItem):
    text: str
    address: str | None
    channel: str
    requester: dict
    assisting: list[str]
    contact_due_at: datetime | None
    paused_at: datetime | None
    return_count: int
    extension_requests: list[dict]
    history: list[Event]


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_INT)
    reason: str | None = Field(default=None, max_length=1000)
    text: str | None = Field(default=None, max_length=5000)
    department: str | None = Field(default=None, max_length=40)
    assisting: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=10)
    parent: str | None = Field(default=None, max_length=20)
    extra: str | None = Field(default=None, max_length=10)
    extension_id: int | None = Field(default=None, ge=1, le=MAX_INT)
    approve: bool | None = None
    attachments: list[dict] = Field(default_factory=list, max_length=10)
    policy_answer: int | None = Field(default=None, ge=1, le=MAX_INT, description="the Q&A entry an answer came from")


def readable(session: Session, staff: Staff, code: str) -> Appeal:
    appeal = session.execute(readable_appeals(staff).where(col(Appeal.code) == code)).scalar_one_or_none()
    if appeal is None:
        raise HTTPException(404, "no such appeal in your view")
    return appeal


def _item(appeal: Appeal, now: datetime) -> dict:
    return dict(code=appeal.code, status=appeal.status, version=appeal.version, type=appeal.appeal_type,
                priority=appeal.priority, category=appeal.category_code, title=appeal.title,
                department=appeal.department_code, district=appeal.district, street=appeal.street,
                received_at=appeal.received_at, accept_due_at=appeal.accept_due_at,
                resolve_due_at=appeal.resolve_due_at,
                overdue=is_overdue(appeal, now))


@router.get("/queue", response_model=QueuePage)
def work_queue(
    staff: CurrentStaff, session: SessionDep,
    status: Annotated[list[AppealStatus] | None, Query()] = None,
    category: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,60}$")] = None,
    overdue: bool | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> QueuePage:
    """Open appeals for you to work on, nearest deadline first (the triage queue for dispatchers)."""
    now = utcnow()
    items, next_cursor = page(session, staff, QueueFilter(tuple(status or ()), category, overdue, q),
                              now=now, cursor=cursor, limit=limit)
    return QueuePage(items=[QueueItem(**_item(a, now)) for a in items], next_cursor=next_cursor)


@router.get("/staff/appeals/{code}", response_model=AppealDetail)
def appeal_detail(code: Code, staff: CurrentStaff, session: SessionDep) -> AppealDetail:
    appeal = readable(session, staff, code)
    return _detail(session, staff, appeal)


def _detail(session: Session, staff: Staff, appeal: Appeal) -> AppealDetail:
    assisting = session.execute(select(col(AppealAssist.department_code))
                                .where(col(AppealAssist.appeal_id) == appeal.id))
    extensions = session.execute(select(ExtensionRequest).where(col(ExtensionRequest.appeal_id) == appeal.id)
                                 .order_by(col(ExtensionRequest.id))).scalars()
    return AppealDetail(
        **_item(appeal, utcnow()), text=appeal.text, address=appeal.address, channel=appeal.channel,
        requester=requester_view(staff, appeal), assisting=list(assisting.scalars()),
        contact_due_at=appeal.contact_due_at, paused_at=appeal.paused_at, return_count=appeal.return_count,
        extension_requests=[e.model_dump(include={"id", "status", "extra", "reason", "requested_by", "decided_by"})
                            for e in extensions],
        history=[Event(kind=e.kind, at=e.at, actor=e.actor, from_status=e.from_status, to_status=e.to_status,
                       detail=e.detail) for e in history(session, appeal.id)],
    )


@router.post("/staff/appeals/{code}/route-now", response_model=AppealDetail)
def route_now(code: Code, staff: CurrentStaff, unit: UnitOfWorkDep) -> AppealDetail:
    """The operator who held a consultation to answer it on the spot routes it after all: dispatch
    takes it at once. 409 if there is no such hold (answered, or the hold ran out and it was routed)."""
    session = unit.session
    appeal = readable(session, staff, code)
    if staff.role != Role.operator:
        raise NotPermitted(staff.role, "route an appeal held for an answer on the spot")
    if not release_hold(session, appeal, staff.username):
        raise HTTPException(409, "这件诉求没有等待您当场答复 / this appeal is not held for your answer")
    unit.wake(DISPATCH)
    unit.commit()
    session.refresh(appeal)
    return _detail(session, staff, appeal)


@router.post("/staff/appeals/{code}/{action}", response_model=AppealDetail)
def take_action(code: Code, action: Action, body: ActionIn, staff: CurrentStaff, unit: UnitOfWorkDep,
                settings: SettingsDep) -> AppealDetail:
    """Take one action on an appeal at the version you saw; 409 if it moved on or the action does
    not apply in its status, 403 if your role may not take it."""
    session = unit.session
    appeal = readable(session, staff, code)
    try:
        act(session, staff, appeal, action, ActionInput(**body.model_dump()), now=utcnow(),
            calendar=load_calendar(session, hours=settings.working_hours, zone=settings.timezone))
        unit.wake(DELIVERY)  # the messages the action wrote
        unit.commit()
    except IntegrityError:
        # Two requests inserting the same row (one assisting department added twice at once): the
        # loser learns someone acted first, as with any other race.
        unit.rollback()
        session.refresh(appeal)
        raise StaleVersion(appeal) from None
    return _detail(session, staff, appeal)
