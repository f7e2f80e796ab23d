"""The GeoReport v2 wire format: refusals in the spec's terms, the category tree as services and
their attributes, a form-encoded submission read into our intake's fields, and the list query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from appealflow.models.appeals.enums import AppealType, Channel, Priority
from appealflow.models.appeals.open311 import MAX_PAGE_SIZE, MAX_WINDOW, Open311Client, Query, client_for_key
from appealflow.models.city.department import Category, Department

DEFAULT_TYPE = AppealType.complaint  # a GeoReport request reports a problem for the city to fix
MAX_DESCRIPTION = 4000  # the spec's limit


class Open311Problem(Exception):
    """A refusal in GeoReport's terms: HTTP 400 bad input, 403 key, 404 not found, 429 too fast."""

    def __init__(self, status: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


def client_of(session: Session, key: str | None) -> Open311Client:
    """The client app holding this key; 403 for a missing, unknown or revoked one."""
    if not key:
        raise Open311Problem(403, "api_key is required to file a request / 提交诉求需要 api_key")
    client = client_for_key(session, key)
    if client is None:
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
    """One service's attributes (GET Service Definition); 404 for an unknown code."""
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
    phone, email = _one(form, "phone", 30), _one(form, "email", 254)
    appeal = dict(
        channel=Channel.open311.value, type=chosen.get("appeal_type", DEFAULT_TYPE.value),
        priority=chosen.get("priority", Priority.normal.value), category=service_code, title=title,
        text=description,
        location=dict(district=district, street=street, address=address_string or address_id or coordinates,
                      lat=lat, long=long),
        requester=dict(name=_name(_one(form, "first_name", 50), _one(form, "last_name", 50)), phone=phone,
                       email=email),
        # GeoReport makes contact optional: a request without one is anonymous, followed by the app
        # that holds its token, and nothing is sent to a requester we cannot reach.
        anonymous=not (phone or email),
    )
    extras = dict(lat=lat, long=long, address_id=address_id, media_url=_one(form, "media_url", 500),
                  account_id=_one(form, "account_id", 100), device_id=_one(form, "device_id", 100),
                  attributes=chosen)
    return Submission(service_code, appeal, extras)


# --- the list query --------------------------------------------------------------------------------

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
