"""Open311 GeoReport v2 requests as stored: the client apps and their keys, what a submission
carried beyond the appeal's own columns, and the queries behind the public request list. The wire
format (forms, errors, JSON and XML, service definitions) is the API's: `api/open311/`.

An Open311 request is an appeal with channel `open311`; what GeoReport carries that an appeal has
no column for (coordinates, address id, media URL, the filing client) sits beside it in
`open311_request`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import JSON, Column, func
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import AppealStatus, Channel
from appealflow.models.city.department import Category, Department
from appealflow.models.files.attachments import Attachment, shown_requesters_photo
from appealflow.models.storage.columns import UTCDateTime, stored_id, utcnow

DEFAULT_RATE_LIMIT = "60/minute"
MAX_WINDOW = timedelta(days=90)  # the spec's default and widest date range
MAX_PAGE_SIZE = 1000  # the spec's default query limit
CLOSED = (AppealStatus.closed, AppealStatus.merged)


class Open311Client(SQLModel, table=True):
    """A city app or aggregator allowed to file requests; only its key's hash is kept."""

    __tablename__ = "open311_client"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    key_hash: str = Field(max_length=64, unique=True)
    revoked: bool = False
    rate_limit: str = Field(default=DEFAULT_RATE_LIMIT, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


class Open311Request(SQLModel, table=True):
    """What a GeoReport submission carried beyond the appeal's own columns."""

    __tablename__ = "open311_request"

    appeal_id: int = Field(foreign_key="appeal.id", primary_key=True)
    client_id: int = Field(foreign_key="open311_client.id", index=True)
    token: str = Field(max_length=64, unique=True)
    lat: float | None = None
    long: float | None = None
    address_id: str | None = Field(default=None, max_length=100)
    media_url: str | None = Field(default=None, max_length=500)
    account_id: str | None = Field(default=None, max_length=100)
    device_id: str | None = Field(default=None, max_length=100)
    attributes: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- client apps and their keys ------------------------------------------------------------------

class ClientError(ValueError):
    """A client app the administrator asked for cannot be made or found."""


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_rate_limit(text: str) -> str:
    """A rate limit in the `limits` notation ('60/minute', '1000 per day'); refused if unreadable."""
    from limits import parse

    try:
        parse(text)
    except ValueError:
        raise ClientError(f"rate limit {text!r} is not like '60/minute' or '1000/day'") from None
    return text


def add_client(session: Session, name: str, rate_limit: str = DEFAULT_RATE_LIMIT) -> str:
    """Register a client app; its new key, shown once."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ClientError("a client name has 1 to 100 characters")
    if session.exec(select(Open311Client).where(col(Open311Client.name) == name)).first():
        raise ClientError(f"an Open311 client named {name!r} exists; revoke it or choose another name")
    key = "o311_" + secrets.token_urlsafe(32)
    session.add(Open311Client(name=name, key_hash=_key_hash(key), rate_limit=check_rate_limit(rate_limit)))
    session.flush()
    return key


def revoke_client(session: Session, name: str) -> None:
    """Revoke a client app's key at once; revoking twice changes nothing."""
    client = session.exec(select(Open311Client).where(col(Open311Client.name) == name)).first()
    if client is None:
        raise ClientError(f"no Open311 client named {name!r}")
    if not client.revoked:
        client.revoked, client.revoked_at = True, utcnow()
        session.add(client)


def list_clients(session: Session) -> list[Open311Client]:
    """Every client app, by name."""
    return list(session.exec(select(Open311Client).order_by(col(Open311Client.name))))


def client_for_key(session: Session, key: str) -> Open311Client | None:
    """The client app holding this key, unless the key is unknown or revoked."""
    client = session.exec(select(Open311Client).where(col(Open311Client.key_hash) == _key_hash(key))).first()
    return None if client is None or client.revoked else client


# --- requests ---------------------------------------------------------------------------------------

def record_submission(session: Session, appeal: Appeal, client: Open311Client, extras: dict) -> Open311Request:
    """The Open311 side of a new appeal, with the token that GET tokens/{token} resolves."""
    row = Open311Request(appeal_id=stored_id(appeal), client_id=stored_id(client), token=secrets.token_urlsafe(18),
                         **extras)
    session.add(row)
    return row


def submission_of(session: Session, appeal: Appeal) -> Open311Request | None:
    """What the Open311 submission of this appeal carried, if it came that way."""
    return session.get(Open311Request, appeal.id)


@dataclass(frozen=True)
class Query:
    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()
    page: int = 1
    page_size: int = MAX_PAGE_SIZE


def find_requests(session: Session, query: Query, *, now: datetime) -> list[Appeal]:
    """Appeals filed through Open311 that match, newest first. Only those: people who phoned the
    hotline or wrote to the website never agreed to have their appeal listed in public."""
    statement = select(Appeal).where(col(Appeal.channel) == Channel.open311)
    if query.ids:  # the spec: a list of ids overrides every other argument
        return list(session.exec(statement.where(col(Appeal.code).in_(query.ids)).order_by(col(Appeal.id).desc())))
    start, end = query.start, query.end
    if start is None and end is None:
        start, end = now - MAX_WINDOW, None
    elif start is None and end is not None:
        start = end - MAX_WINDOW
    elif end is None and start is not None:
        end = start + MAX_WINDOW
    statement = statement.where(col(Appeal.received_at) >= start)
    if end is not None:
        statement = statement.where(col(Appeal.received_at) <= end)
    if query.service_codes:
        statement = statement.where(col(Appeal.category_code).in_(query.service_codes))
    if len(query.statuses) == 1:
        closed = col(Appeal.status).in_(CLOSED)
        statement = statement.where(closed if query.statuses[0] == "closed" else ~closed)
    statement = (statement.order_by(col(Appeal.received_at).desc(), col(Appeal.id).desc())
                 .offset((query.page - 1) * query.page_size).limit(query.page_size))
    return list(session.exec(statement))


def public_photo(session: Session, code: str, attachment_id: int) -> Attachment | None:
    """The photo an Open311 GET names as the request's media_url, and nothing else: the requester's
    own public photo of an Open311 request, once its copies (without EXIF) exist."""
    appeal = find_request(session, code)
    if appeal is None:
        return None
    return session.exec(select(Attachment).where(
        col(Attachment.id) == attachment_id, col(Attachment.appeal_id) == appeal.id,
        shown_requesters_photo())).first()


def find_request(session: Session, code: str) -> Appeal | None:
    """The Open311 appeal with this code, if it is one."""
    appeal = session.exec(select(Appeal).where(col(Appeal.code) == code,
                                               col(Appeal.channel) == Channel.open311)).first()
    return appeal


def appeal_for_token(session: Session, token: str) -> Appeal | None:
    """The appeal a GeoReport token stands for."""
    row = session.exec(select(Open311Request).where(col(Open311Request.token) == token)).first()
    return session.get(Appeal, row.appeal_id) if row else None


@dataclass(frozen=True)
class Context:
    """What many request views share, read once per page."""

    categories: dict[str, Category]
    departments: dict[str, Department]
    submissions: dict[int, Open311Request]
    parents: dict[int, str]
    closed_by: dict[int, str]
    zone: str
    photos: dict[int, int]  # appeal id: its requester's first public photo ready to be shown
    public_url: str = ""


def context_for(session: Session, appeals: Iterable[Appeal], zone: str, public_url: str = "") -> Context:
    """Everything the views of these appeals need, in a few queries."""
    appeals = list(appeals)
    ids = [a.id for a in appeals]
    categories = {c.code: c for c in session.exec(
        select(Category).where(col(Category.code).in_({a.category_code for a in appeals if a.category_code})))}
    departments = {d.code: d for d in session.exec(
        select(Department).where(col(Department.code).in_({a.department_code for a in appeals if a.department_code})))}
    submissions = {r.appeal_id: r for r in session.exec(
        select(Open311Request).where(col(Open311Request.appeal_id).in_(ids)))}
    parent_ids = {a.parent_id for a in appeals if a.parent_id}
    parent_codes = dict(session.exec(select(col(Appeal.id), col(Appeal.code))
                                     .where(col(Appeal.id).in_(parent_ids))).all()) if parent_ids else {}
    parents = {stored_id(a): parent_codes.get(a.parent_id, "") for a in appeals if a.parent_id}
    closing = [a.id for a in appeals if a.status == AppealStatus.closed]
    closed_by = {}
    if closing:
        latest = (select(col(AppealEvent.appeal_id), func.max(col(AppealEvent.id)))
                  .where(col(AppealEvent.appeal_id).in_(closing), col(AppealEvent.to_status) == AppealStatus.closed)
                  .group_by(col(AppealEvent.appeal_id)))
        last_ids = [event_id for _, event_id in session.exec(latest).all()]
        closed_by = dict(session.exec(select(col(AppealEvent.appeal_id), col(AppealEvent.kind))
                                      .where(col(AppealEvent.id).in_(last_ids))).all())
    photos: dict[int, int] = {}
    for appeal_id, attachment_id in session.exec(
            select(col(Attachment.appeal_id), func.min(col(Attachment.id)))
            .where(col(Attachment.appeal_id).in_(ids), shown_requesters_photo())
            .group_by(col(Attachment.appeal_id))).all():
        if attachment_id is not None:
            photos[appeal_id] = attachment_id
    return Context(categories, departments, submissions, parents, closed_by, zone, photos, public_url)
