"""The workbench: queues, appeal details and actions for staff; every lookup goes through the
readable-appeals query, so what a member of staff may not see is not found."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from appealflow.api.auth import CurrentStaff
from appealflow.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from appealflow.api.errors import STATUS
from appealflow.api.schemas import CODE_PATTERN, Event
from appealflow.models.appeals.access import readable_appeals, requester_view
from appealflow.models.appeals.appeal import Appeal, AppealAssist, ExtensionRequest
from appealflow.models.appeals.desk import desk_for, same_requester
from appealflow.models.appeals.enums import AppealStatus, ContactMethod, ContactOutcome, Role
from appealflow.models.appeals.history import Names, narrate
from appealflow.models.appeals.intake import history, release_hold
from appealflow.models.appeals.lifecycle import Action, NotPermitted
from appealflow.models.appeals.open311 import Open311Request
from appealflow.models.appeals.queue import Owner, QueueFilter, page, review_waits
from appealflow.models.appeals.steps import ActionInput, StaleVersion
from appealflow.models.appeals.workbench import act
from appealflow.models.city.people import Staff
from appealflow.models.clocks.calendar import load_calendar
from appealflow.models.clocks.deadlines import is_overdue
from appealflow.models.refusal import Refused
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
    next_due_at: datetime | None = Field(description="the nearest deadline of a clock still running: the sort key")
    overdue: bool
    assignee: str | None = Field(description="the handler it is given to; none: the department's mailbox")
    reopened: bool = Field(description="重办: the requester was not satisfied and it is handled again")
    waiting_since: datetime | None = Field(default=None, description="a reply waiting for review: since when")


class StaffEvent(Event):
    sentence: dict[str, str] = Field(description="the event as one sentence, by language (zh, en)")
    text: dict[str, str] = Field(description="its free text, if any: the label by language and the value")


class EarlierAppeal(BaseModel):
    code: str
    title: str
    status: str
    received_at: datetime


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None


class AppealDetail(QueueItem):
    text: str
    address: str | None
    position: dict | None = None  # {lat, long, accuracy_m} where the phone or the app gave it
    media_url: str | None = None  # an Open311 app's photo link: shown as a link, never fetched by us
    channel: str
    requester: dict
    assisting: list[str]
    contact_due_at: datetime | None
    paused_at: datetime | None
    return_count: int
    reopen_count: int
    extension_requests: list[dict]
    history: list[StaffEvent]
    earlier: list[EarlierAppeal] = Field(description="the same requester's other appeals of the last 12 months "
                                                     "that you may see (重复来电)")
    reviews_replies: bool = Field(description="whether the department's head approves replies before they are sent")
    reply_for_review: dict | None = Field(description="the reply waiting for the head's approval, if one is")
    canned_replies: list[dict] = Field(description="the department's stock answers for this appeal, filled in")
    colleagues: list[dict] = Field(description="whom a department head may assign it to")


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
    assignee: str | None = Field(default=None, max_length=64, description="assign: the handler's username")
    method: ContactMethod | None = Field(default=None, description="contact: how the requester was contacted")
    outcome: ContactOutcome | None = Field(default=None, description="contact: what came of it")
    contacted_at: AwareDatetime | None = Field(default=None, description="contact: when, with its zone (default now)")


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
                resolve_due_at=appeal.resolve_due_at, next_due_at=appeal.next_due_at,
                overdue=is_overdue(appeal, now), assignee=appeal.assignee, reopened=appeal.reopen_count > 0)


SEARCH_HELP = "a code or its tail, the requester's phone (or its last four digits) or name, or words of the text"


@router.get("/queue", response_model=QueuePage)
def work_queue(
    staff: CurrentStaff, session: SessionDep,
    status: Annotated[list[AppealStatus] | None, Query()] = None,
    category: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,60}$")] = None,
    overdue: bool | None = None,
    q: Annotated[str | None, Query(max_length=100, description=SEARCH_HELP)] = None,
    owner: Annotated[Owner | None, Query(description="mine: given to you; unassigned: in the mailbox")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> QueuePage:
    """Open appeals for you to work on, nearest running deadline first (the triage queue for dispatchers)."""
    now = utcnow()
    items, next_cursor = page(session, staff, QueueFilter(tuple(status or ()), category, overdue, q, owner),
                              now=now, cursor=cursor, limit=limit)
    waits = review_waits(session, [a.id for a in items if a.id and a.status == AppealStatus.reviewing])
    return QueuePage(items=[QueueItem(**_item(a, now), waiting_since=waits.get(a.id or 0)) for a in items],
                     next_cursor=next_cursor)


@router.get("/staff/appeals/{code}", response_model=AppealDetail)
def appeal_detail(code: Code, staff: CurrentStaff, session: SessionDep, settings: SettingsDep) -> AppealDetail:
    appeal = readable(session, staff, code)
    return _detail(session, staff, appeal, settings.timezone)


def _detail(session: Session, staff: Staff, appeal: Appeal, zone: str) -> AppealDetail:
    assisting = session.execute(select(col(AppealAssist.department_code))
                                .where(col(AppealAssist.appeal_id) == appeal.id))
    extensions = session.execute(select(ExtensionRequest).where(col(ExtensionRequest.appeal_id) == appeal.id)
                                 .order_by(col(ExtensionRequest.id))).scalars()
    events = list(history(session, appeal.id))
    said = narrate(events, Names.read(session, events), zone=zone)
    desk = desk_for(session, staff, appeal, zone=zone)
    return AppealDetail(
        **_item(appeal, utcnow()), text=appeal.text, address=appeal.address, channel=appeal.channel,
        position=dict(lat=appeal.latitude, long=appeal.longitude, accuracy_m=appeal.position_accuracy_m)
        if appeal.latitude is not None else None,
        media_url=session.execute(select(col(Open311Request.media_url))
                                  .where(col(Open311Request.appeal_id) == appeal.id)).scalar_one_or_none(),
        requester=requester_view(staff, appeal), assisting=list(assisting.scalars()),
        contact_due_at=appeal.contact_due_at, paused_at=appeal.paused_at, return_count=appeal.return_count,
        extension_requests=[e.model_dump(include={"id", "status", "extra", "reason", "requested_by", "decided_by"})
                            for e in extensions],
        history=[StaffEvent(kind=e.kind, at=e.at, actor=e.actor, from_status=e.from_status, to_status=e.to_status,
                            detail=e.detail, sentence=s.sentence, text=s.text)
                 for e, s in zip(events, said, strict=True)],
        reopen_count=appeal.reopen_count,
        earlier=[EarlierAppeal(code=a.code, title=a.title, status=a.status, received_at=a.received_at)
                 for a in same_requester(session, staff, appeal, now=utcnow())],
        reviews_replies=desk.reviews_replies, reply_for_review=desk.reply_for_review,
        canned_replies=desk.canned_replies, colleagues=desk.colleagues,
    )


@router.post("/staff/appeals/{code}/route-now", response_model=AppealDetail)
def route_now(code: Code, staff: CurrentStaff, unit: UnitOfWorkDep, settings: SettingsDep) -> AppealDetail:
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
    return _detail(session, staff, appeal, settings.timezone)


MAX_BULK = 100


class BulkAppeal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    version: int = Field(ge=1, le=MAX_INT)


class BulkIn(BaseModel):
    """One action for many appeals (from the dispatcher's list), each at the version seen there."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["dispatch", "merge", "invalidate"]
    appeals: list[BulkAppeal] = Field(min_length=1, max_length=MAX_BULK)
    department: str | None = Field(default=None, max_length=40)
    assisting: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=10)
    parent: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=1000)


@router.post("/staff/appeals/bulk")
def bulk_action(body: BulkIn, staff: CurrentStaff, unit: UnitOfWorkDep, settings: SettingsDep) -> dict:
    """The same action on many appeals, each checked and refused on its own, as if taken one by one:
    a transaction each (so one refusal leaves the others done), and each outcome in the answer
    ("done", or the status code and message the single action would have answered)."""
    session = unit.session
    calendar = load_calendar(session, hours=settings.working_hours, zone=settings.timezone)
    results: list[dict] = []
    for item in {a.code: a for a in body.appeals}.values():  # an appeal listed twice is acted on once
        given = ActionInput(version=item.version, department=body.department, assisting=body.assisting,
                            parent=body.parent, reason=body.reason)
        try:
            appeal = readable(session, staff, item.code)
            act(session, staff, appeal, Action(body.action), given, now=utcnow(), calendar=calendar)
            unit.wake(DELIVERY)
            unit.commit()
            results.append({"code": item.code, "done": True, "status": appeal.status, "version": appeal.version})
        except Refused as refused:
            unit.rollback()
            results.append({"code": item.code, "done": False, "status_code": STATUS[refused.kind],
                            "detail": str(refused), "field": refused.field, **refused.facts()})
        except HTTPException as missing:  # not in this person's view
            unit.rollback()
            results.append({"code": item.code, "done": False, "status_code": missing.status_code,
                            "detail": missing.detail})
        except IntegrityError:
            unit.rollback()
            results.append({"code": item.code, "done": False, "status_code": 409,
                            "detail": "有人先处理了 / someone acted first"})
    done = sum(r["done"] for r in results)
    return {"action": body.action, "done": done, "refused": len(results) - done, "results": results}


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
    return _detail(session, staff, appeal, settings.timezone)
