"""Open311 GeoReport v2 over our appeals, as plain data: the category tree as service definitions,
a form-encoded submission as appeal fields, an appeal as a service request, and the client apps'
API keys. Rendering (JSON or XML) and HTTP live in the API layer.

An Open311 request is an appeal with channel `open311`; what GeoReport carries that an appeal has
no column for (coordinates, address id, media URL, the filing client) sits beside it in
`open311_request`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Column, func
from sqlmodel import Field, Session, SQLModel, col, select

from appealflow.models.appeal import Appeal, AppealEvent
from appealflow.models.columns import UTCDateTime, stored_id, utcnow
from appealflow.models.department import Category, Department
from appealflow.models.enums import AppealStatus, AppealType, Channel, Priority

DEFAULT_RATE_LIMIT = "60/minute"
DEFAULT_TYPE = AppealType.complaint  # a GeoReport request reports a problem for the city to fix
MAX_DESCRIPTION = 4000  # the spec's limit
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


class Open311Problem(Exception):
    """A refusal in GeoReport's terms: HTTP 400 bad input, 403 key, 404 not found, 429 too fast."""

    def __init__(self, status: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


# --- client apps and their keys ------------------------------------------------------------------

class ClientError(ValueError):
    pass


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
    client = session.exec(select(Open311Client).where(col(Open311Client.name) == name)).first()
    if client is None:
        raise ClientError(f"no Open311 client named {name!r}")
    if not client.revoked:
        client.revoked, client.revoked_at = True, utcnow()
        session.add(client)


def list_clients(session: Session) -> list[Open311Client]:
    return list(session.exec(select(Open311Client).order_by(col(Open311Client.name))))


def client_for_key(session: Session, key: str | None) -> Open311Client:
    """The client app holding this key; 403 for a missing, unknown or revoked one."""
    if not key:
        raise Open311Problem(403, "api_key is required to file a request / 提交诉求需要 api_key")
    client = session.exec(select(Open311Client).where(col(Open311Client.key_hash) == _key_hash(key))).first()
    if client is None or client.revoked:
        raise Open311Problem(403, "invalid or revoked api_key / api_key 无效或已被吊销")
    return client


# --- services: the category tree ---------------------------------------------------------------

@dataclass(frozen=True)
class Attribute:
    code: str
    datatype: str
    description: str
    order: int
    required: bool = False
    variable: bool = True
    values: tuple[tuple[str, str], ...] = ()
    datatype_description: str | None = None

    def as_dict(self) -> dict:
        out = dict(variable=self.variable, code=self.code, datatype=self.datatype, required=self.required,
                   datatype_description=self.datatype_description, order=self.order,
                   description=self.description)
        if self.values:
            out["values"] = [dict(key=k, name=n) for k, n in self.values]
        return out


TYPE_NAMES = {
    AppealType.consultation: "咨询 / Enquiry", AppealType.help_request: "求助 / Request for help",
    AppealType.complaint: "投诉 / Complaint", AppealType.report: "举报 / Report of wrongdoing",
    AppealType.suggestion: "建议 / Suggestion", AppealType.praise: "表扬 / Praise",
}
PRIORITY_NAMES = {Priority.normal: "一般 / Normal", Priority.urgent: "紧急 / Urgent"}


def _both(zh: str, en: str) -> str:
    return f"{zh} / {en}"


def _places(session: Session) -> tuple[list[Department], list[Department]]:
    departments = list(session.exec(select(Department).where(col(Department.kind).in_(("district", "street")))
                                    .order_by(col(Department.code))))
    return ([d for d in departments if d.kind == "district" and d.district],
            [d for d in departments if d.kind == "street" and d.street])


def attributes(session: Session) -> list[Attribute]:
    """The same for every service: what an appeal needs that GeoReport's own fields do not carry."""
    districts, streets = _places(session)
    return [
        Attribute("privacy_notice", "string", order=1, variable=False,
                  description="您的姓名、电话和邮箱只用于答复您，不会公开。/ Your name, phone and e-mail are used "
                              "only to answer you and are never published."),
        Attribute("appeal_type", "singlevaluelist", order=2,
                  description=f"诉求类型（默认投诉）/ Kind of appeal (default: {DEFAULT_TYPE.value})",
                  values=tuple((t.value, TYPE_NAMES[t]) for t in AppealType)),
        Attribute("priority", "singlevaluelist", order=3,
                  description="紧急程度（默认一般）/ Urgency (default: normal)",
                  values=tuple((p.value, PRIORITY_NAMES[p]) for p in Priority)),
        Attribute("district", "singlevaluelist", order=4,
                  description="所在区（用于派单）/ District, used to route the appeal",
                  values=tuple((d.district or "", _both(d.name_zh, d.name_en)) for d in districts)),
        Attribute("street", "singlevaluelist", order=5,
                  description="所在街道（用于派单，区可省略）/ Subdistrict, used to route the appeal "
                              "(implies its district)",
                  values=tuple((d.street or "", _both(d.name_zh, d.name_en)) for d in streets)),
        Attribute("title", "string", order=6,
                  description="标题（默认取描述开头）/ Title (default: the start of the description)",
                  datatype_description="最多200字 / at most 200 characters"),
    ]


def _themes(session: Session) -> dict[str, Category]:
    return {c.code: c for c in session.exec(select(Category))}


def _service(category: Category, by_code: dict[str, Category]) -> dict:
    theme = category
    while theme.parent_code and theme.parent_code in by_code:
        theme = by_code[theme.parent_code]
    description = _both(category.name_zh, category.name_en)
    if theme is not category:
        description = f"{description}（{theme.name_zh} / {theme.name_en}）"
    return dict(service_code=category.code, service_name=_both(category.name_zh, category.name_en),
                description=description, metadata=True, type="realtime",
                keywords=", ".join(category.keywords) or None, group=_both(theme.name_zh, theme.name_en))


def services(session: Session) -> list[dict]:
    """Every category as a service, themes first then their sub-categories, as the tree reads."""
    by_code = _themes(session)
    ordered: list[Category] = []

    def walk(parent: str | None) -> None:
        for category in sorted((c for c in by_code.values() if c.parent_code == parent), key=lambda c: c.code):
            ordered.append(category)
            walk(category.code)

    walk(None)
    return [_service(c, by_code) for c in ordered]


def service_definition(session: Session, service_code: str) -> dict:
    if session.get(Category, service_code) is None:
        raise Open311Problem(404, f"service_code {service_code!r} not found / 没有这个服务类别")
    return dict(service_code=service_code, attributes=[a.as_dict() for a in attributes(session)])


# --- filing a request ----------------------------------------------------------------------------

@dataclass
class Submission:
    """A GeoReport form read into the fields of our intake (the API validates them as any appeal)."""

    service_code: str
    appeal: dict
    extras: dict = field(default_factory=dict)


def _one(form: dict[str, list[str]], name: str, limit: int = 300) -> str | None:
    values = [v for v in form.get(name, []) if v.strip()]
    if len(values) > 1:
        raise Open311Problem(400, f"{name} was given {len(values)} times; give it once")
    if not values:
        return None  # the spec: an empty parameter is the same as none
    value = values[0].strip()
    if len(value) > limit:
        raise Open311Problem(400, f"{name} is longer than {limit} characters")
    return value


def _number(form: dict[str, list[str]], name: str, low: float, high: float) -> float | None:
    text = _one(form, name, 40)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise Open311Problem(400, f"{name} must be a number, not {text!r}") from None
    if not low <= value <= high:
        raise Open311Problem(400, f"{name} must lie between {low:g} and {high:g}")
    return value


def _attributes(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """attribute[code]=v and attribute[code][]=v (a multivaluelist) gathered per code."""
    found: dict[str, list[str]] = {}
    for key, value in pairs:
        if not key.startswith("attribute["):
            continue
        inner = key[len("attribute["):]
        code, _, rest = inner.partition("]")
        if not code or rest not in ("", "[]"):
            raise Open311Problem(400, f"{key!r} is not like attribute[code]=value")
        found.setdefault(code, []).append(value.strip())
    return found


def _name(first: str | None, last: str | None) -> str | None:
    if not (first or last):
        return None
    # Chinese names read family name first, with no space; others as given.
    if any("\u4e00" <= ch <= "\u9fff" for ch in (first or "") + (last or "")):
        return f"{last or ''}{first or ''}"
    return " ".join(x for x in (first, last) if x)


def read_submission(session: Session, pairs: Sequence[tuple[str, str]]) -> Submission:
    """A POST requests form as the body of our intake; 400/404 naming what is wrong."""
    form: dict[str, list[str]] = {}
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    service_code = _one(form, "service_code", 60)
    if service_code is None:
        raise Open311Problem(400, "service_code is required / 缺少 service_code")
    if session.get(Category, service_code) is None:
        raise Open311Problem(404, f"service_code {service_code!r} not found / 没有这个服务类别")

    lat, long = _number(form, "lat", -90, 90), _number(form, "long", -180, 180)
    if (lat is None) != (long is None):
        raise Open311Problem(400, "lat and long go together: give both or neither")
    address_string, address_id = _one(form, "address_string", 300), _one(form, "address_id", 100)
    if lat is None and not (address_string or address_id):
        raise Open311Problem(400, "a location is required: lat and long, address_string or address_id "
                                  "/ 请提供位置")
    description = _one(form, "description", MAX_DESCRIPTION)
    if description is None:
        raise Open311Problem(400, "description is required: say what happened / 请描述诉求内容")

    given = _attributes(pairs)
    known = {a.code: a for a in attributes(session) if a.variable}
    chosen: dict[str, str] = {}
    for code, values in given.items():
        attribute = known.get(code)
        if attribute is None:
            raise Open311Problem(400, f"unknown attribute {code!r}; see services/{service_code}.json")
        values = [v for v in values if v]
        if len(values) > 1:
            raise Open311Problem(400, f"attribute {code!r} takes one value")
        if not values:
            continue
        if attribute.values and values[0] not in {k for k, _ in attribute.values}:
            raise Open311Problem(400, f"attribute {code!r}: {values[0]!r} is not one of its values")
        chosen[code] = values[0]

    district, street = chosen.get("district"), chosen.get("street")
    if street:
        _, streets = _places(session)
        home = next(d.district for d in streets if d.street == street)
        if district and district != home:
            raise Open311Problem(400, f"street {street!r} lies in district {home!r}, not {district!r}")
        district = home
    coordinates = f"{lat:.6f},{long:.6f}" if lat is not None else None
    title = chosen.get("title") or description.splitlines()[0][:30]
    appeal = dict(
        channel=Channel.open311.value, type=chosen.get("appeal_type", DEFAULT_TYPE.value),
        priority=chosen.get("priority", Priority.normal.value), category=service_code, title=title,
        text=description,
        location=dict(district=district, street=street, address=address_string or address_id or coordinates),
        requester=dict(name=_name(_one(form, "first_name", 50), _one(form, "last_name", 50)),
                       phone=_one(form, "phone", 30), email=_one(form, "email", 254)),
    )
    extras = dict(lat=lat, long=long, address_id=address_id, media_url=_one(form, "media_url", 500),
                  account_id=_one(form, "account_id", 100), device_id=_one(form, "device_id", 100),
                  attributes=chosen)
    return Submission(service_code, appeal, extras)


def record_submission(session: Session, appeal: Appeal, client: Open311Client, extras: dict) -> Open311Request:
    """The Open311 side of a new appeal, with the token that GET tokens/{token} resolves."""
    row = Open311Request(appeal_id=stored_id(appeal), client_id=stored_id(client), token=secrets.token_urlsafe(18),
                         **extras)
    session.add(row)
    return row


def submission_of(session: Session, appeal: Appeal) -> Open311Request | None:
    return session.get(Open311Request, appeal.id)


CREATED_NOTICE = ("已收到，将按派单目录分派给承办单位，办结时限在派单时确定。/ Received; it will be routed to the "
                  "responsible department, and its deadline is set then.")


def created_view(appeal: Appeal, row: Open311Request | None) -> dict:
    return dict(service_request_id=appeal.code, service_notice=CREATED_NOTICE,
                account_id=row.account_id if row else None)


# --- following requests ----------------------------------------------------------------------------

def local_time(moment: datetime | None, zone: str) -> str | None:
    """ISO 8601 in the city's zone with its offset; fractions of a second kept so nothing rounds."""
    return moment.astimezone(ZoneInfo(zone)).isoformat() if moment else None


def parse_time(name: str, text: str | None) -> datetime | None:
    """ISO 8601 with Z or an offset, fractions allowed; a time without a zone is ambiguous: refused."""
    if text is None or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Open311Problem(400, f"{name} {text!r} is not an ISO 8601 date-time like "
                                  "2026-11-27T09:00:00+08:00") from None
    if moment.tzinfo is None:
        raise Open311Problem(400, f"{name} {text!r} has no time zone: add Z or an offset like +08:00")
    return moment


@dataclass(frozen=True)
class Query:
    ids: tuple[str, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] = ()
    page: int = 1
    page_size: int = MAX_PAGE_SIZE


def _listed(text: str | None, name: str, limit: int = MAX_PAGE_SIZE) -> tuple[str, ...]:
    values = tuple(v.strip() for v in (text or "").split(",") if v.strip())
    if len(values) > limit:
        raise Open311Problem(400, f"{name} lists more than {limit} values")
    return values


def _count(text: str | None, name: str, default: int, high: int) -> int:
    if text is None or not text.strip():
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= high:
        raise Open311Problem(400, f"{name} must be a whole number from 1 to {high}")
    return int(text)


def read_query(params: dict[str, str | None]) -> Query:
    """GET requests' filters; the window is the spec's: 90 days at most, the latest 90 by default."""
    statuses = _listed(params.get("status"), "status")
    if set(statuses) - {"open", "closed"}:
        raise Open311Problem(400, "status takes open, closed or both (comma separated)")
    start, end = parse_time("start_date", params.get("start_date")), parse_time("end_date", params.get("end_date"))
    if start and end and end < start:
        raise Open311Problem(400, "end_date is before start_date")
    if start and end and end - start > MAX_WINDOW:
        raise Open311Problem(400, "start_date and end_date may not span more than 90 days")
    return Query(ids=_listed(params.get("service_request_id"), "service_request_id"),
                 service_codes=_listed(params.get("service_code"), "service_code"), start=start, end=end,
                 statuses=statuses, page=_count(params.get("page"), "page", 1, 1_000_000),
                 page_size=_count(params.get("page_size"), "page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE))


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


def find_request(session: Session, code: str) -> Appeal:
    appeal = session.exec(select(Appeal).where(col(Appeal.code) == code,
                                               col(Appeal.channel) == Channel.open311)).first()
    if appeal is None:
        raise Open311Problem(404, f"service_request_id {code!r} not found / 没有这个诉求")
    return appeal


def request_for_token(session: Session, token: str) -> dict:
    row = session.exec(select(Open311Request).where(col(Open311Request.token) == token)).first()
    appeal = session.get(Appeal, row.appeal_id) if row else None
    if appeal is None:
        raise Open311Problem(404, f"token {token!r} not found / 没有这个 token")
    return dict(service_request_id=appeal.code, token=token)


# What each status of our life cycle tells the public: open or closed, and in words.
STATUS_NOTES: dict[str, str] = {
    AppealStatus.received: "已收到，正在分派 / Received, being routed",
    AppealStatus.triage: "12345热线正在人工确定承办单位 / The 12345 centre is choosing the responsible department",
    AppealStatus.dispatched: "已派至{agency}，待签收 / Sent to {agency}, waiting to be accepted",
    AppealStatus.accepted: "{agency}已签收 / Accepted by {agency}",
    AppealStatus.in_progress: "{agency}正在办理 / {agency} is working on it",
    AppealStatus.waiting_requester: "等待诉求人补充信息，计时暂停 / Waiting for information from the requester; "
                                    "the clock is paused",
    AppealStatus.replied: "{agency}已答复，待诉求人评价 / {agency} has replied; waiting for the requester's rating",
    AppealStatus.returned: "承办单位退回，12345热线重新分派 / Returned by the department; "
                           "the 12345 centre re-routes it",
    AppealStatus.arbitration: "多次退回，由督办人员裁定承办单位 / Returned repeatedly; "
                              "a supervisor decides who handles it",
    AppealStatus.reopened: "诉求人不满意，重新办理 / The requester was not satisfied; it is being handled again",
    AppealStatus.merged: "已并入诉求 {parent} 一并办理 / Merged into request {parent} and handled with it",
}
SATISFACTION = {"satisfied": "满意 / satisfied", "basically_satisfied": "基本满意 / basically satisfied",
                "unsatisfied": "不满意 / unsatisfied"}


@dataclass(frozen=True)
class Context:
    """What many request views share, read once per page."""

    categories: dict[str, Category]
    departments: dict[str, Department]
    submissions: dict[int, Open311Request]
    parents: dict[int, str]
    closed_by: dict[int, str]
    zone: str


def context_for(session: Session, appeals: Iterable[Appeal], zone: str) -> Context:
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
    return Context(categories, departments, submissions, parents, closed_by, zone)


def _status_notes(appeal: Appeal, agency: str, context: Context) -> str:
    if appeal.status == AppealStatus.closed:
        if context.closed_by.get(stored_id(appeal)) == "invalidate":
            return "经核实不属于有效诉求，已关闭 / Closed: not a valid appeal"
        rating = SATISFACTION.get(appeal.rated_satisfaction or "")
        return "已办结 / Resolved" + (f"；诉求人评价：{rating}" if rating else "")
    template = STATUS_NOTES.get(appeal.status, appeal.status)
    return template.format(agency=agency or "承办单位 / the department",
                           parent=context.parents.get(stored_id(appeal), ""))


def _service_notice(appeal: Appeal, context: Context) -> str | None:
    if appeal.status in CLOSED:
        return None
    if appeal.status == AppealStatus.waiting_requester:
        return "计时暂停，收到补充信息后继续 / The deadline clock is paused until the information arrives"
    if appeal.resolve_due_at is None:
        return "派单后确定办结时限 / The deadline is set when it is dispatched"
    due = appeal.resolve_due_at.astimezone(ZoneInfo(context.zone)).strftime("%Y-%m-%d %H:%M")
    return f"承办单位应于 {due} 前办结 / The department is due to resolve it by {due}"


def request_view(appeal: Appeal, context: Context) -> dict:
    """An appeal as a GeoReport service request. No field carries the requester's name or contact."""
    category = context.categories.get(appeal.category_code or "")
    department = context.departments.get(appeal.department_code or "")
    agency = _both(department.name_zh, department.name_en) if department else None
    row = context.submissions.get(stored_id(appeal))
    return dict(
        service_request_id=appeal.code,
        status="closed" if appeal.status in CLOSED else "open",
        status_notes=_status_notes(appeal, agency or "", context),
        service_name=_both(category.name_zh, category.name_en) if category else None,
        service_code=appeal.category_code or "",
        description=appeal.text,
        agency_responsible=agency,
        service_notice=_service_notice(appeal, context),
        requested_datetime=local_time(appeal.received_at, context.zone),
        updated_datetime=local_time(appeal.updated_at, context.zone),
        expected_datetime=local_time(appeal.resolve_due_at, context.zone),
        address=appeal.address,
        address_id=row.address_id if row else None,
        zipcode=None,
        lat=row.lat if row else None,
        long=row.long if row else None,
        media_url=row.media_url if row else None,
    )


def views(session: Session, appeals: Sequence[Appeal], zone: str) -> list[dict]:
    context = context_for(session, appeals, zone)
    return [request_view(a, context) for a in appeals]


# --- the command line: `appealflow open311 key add|revoke|list` -------------------------------------

def register_cli(commands) -> None:
    """Add the `open311` command to the `appealflow` argument parser."""
    open311 = commands.add_parser("open311", help="Open311 GeoReport v2 client apps").add_subparsers(required=True)
    key = open311.add_parser("key", help="client apps' API keys").add_subparsers(required=True)
    p = key.add_parser("add", help="register a client app and print its API key (shown once)")
    p.add_argument("name")
    p.add_argument("--rate-limit", default=DEFAULT_RATE_LIMIT, help="like 60/minute (default) or 1000/day")
    p.set_defaults(func=_cli_add)
    p = key.add_parser("revoke", help="revoke a client app's key at once")
    p.add_argument("name")
    p.set_defaults(func=_cli_revoke)
    key.add_parser("list", help="client apps, their limits and whether revoked").set_defaults(func=_cli_list)


def _cli_session():
    from appealflow.models.db import session_scope
    from appealflow.settings import get_settings

    return session_scope(get_settings().sqlalchemy_url)


def _cli_add(args) -> None:
    import sys

    try:
        with _cli_session() as session:
            key = add_client(session, args.name, args.rate_limit)
    except ClientError as error:
        sys.exit(f"appealflow: {error}")
    print(key)


def _cli_revoke(args) -> None:
    import sys

    try:
        with _cli_session() as session:
            revoke_client(session, args.name)
    except ClientError as error:
        sys.exit(f"appealflow: {error}")
    print(f"revoked the key of {args.name}")


def _cli_list(_args) -> None:
    with _cli_session() as session:
        for client in list_clients(session):
            print(f"{client.name}\t{client.rate_limit}\t{'revoked' if client.revoked else 'active'}")

