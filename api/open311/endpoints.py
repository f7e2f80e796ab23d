"""Open311 GeoReport v2 under /open311/v2, in JSON and XML, and the admins' endpoints for client keys.

Every answer, refusals included, is in the format the path names (`.json` or `.xml`), errors as the
spec's `errors`/`error` list. Paths are served with and without a trailing slash and nothing under
/open311/v2 redirects: many clients do not follow redirects on POST.
"""

import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any
from xml.etree import ElementTree

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from appealflow.api.auth import CurrentStaff
from appealflow.api.deps import SessionDep, SettingsDep, UnitOfWorkDep
from appealflow.api.open311 import views, wire
from appealflow.api.open311.wire import Open311Problem
from appealflow.api.schemas import AppealIn
from appealflow.models.appeals import open311 as stored
from appealflow.models.appeals.enums import Role
from appealflow.models.appeals.intake import receive_once
from appealflow.models.appeals.tracking import access_token
from appealflow.models.refusal import Kind, Refused
from appealflow.models.storage.columns import utcnow
from appealflow.workers.queues import DISPATCH

log = logging.getLogger(__name__)
PREFIX = "/open311/v2"
router = APIRouter(tags=["open311"])
admin = APIRouter(tags=["open311"])
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
# Spark convention: the element name of one item in each list.
ITEM = {"services": "service", "service_requests": "request", "errors": "error", "attributes": "attribute",
        "values": "value"}


# --- rendering ------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(name: str, value: Any) -> ElementTree.Element:
    element = ElementTree.Element(name)
    if isinstance(value, dict):
        for key, inner in value.items():
            element.append(_element(key, inner))
    elif isinstance(value, list):
        for inner in value:
            element.append(_element(ITEM[name], inner))
    else:
        element.text = _text(value)
    return element


def to_xml(root: str, body: Any) -> bytes:
    tree = _element(root, body)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(tree, encoding="utf-8",
                                                                             xml_declaration=False)


def render(fmt: str, root: str, body: Any, status: int = 200, headers: dict | None = None) -> Response:
    """A bare JSON array (or object), or the same as XML under `root`."""
    content = json.dumps(body, ensure_ascii=False).encode() if fmt == "json" else to_xml(root, body)
    return Response(content, status_code=status, headers=headers, media_type=FORMATS[fmt])


def error(fmt: str, status: int, description: str, headers: dict | None = None) -> Response:
    return render(fmt if fmt in FORMATS else "xml", "errors", [{"code": status, "description": description}],
                  status, headers)


def answer(fmt: str, produce: Callable[[], Response]) -> Response:
    """Run one endpoint, mapping every refusal to the spec's error list in the asked format."""
    if fmt not in FORMATS:
        return error("xml", 404, f"unknown format {fmt!r}: use .json or .xml")
    try:
        return produce()
    except Open311Problem as problem:
        return error(fmt, problem.status, problem.description,
                     {"Retry-After": str(problem.retry_after)} if problem.retry_after else None)
    except Refused as refused:
        return error(fmt, *georeport_error(refused))


# A domain refusal in GeoReport's terms: bad input is 400 there, and fields go by the form's names.
GEOREPORT_STATUS = {Kind.invalid: 400, Kind.forbidden: 403, Kind.not_found: 404, Kind.conflict: 409,
                    Kind.too_large: 413, Kind.unsupported: 415}
FORM_NAMES = {"requester": "email or phone"}


def georeport_error(refused: Refused) -> tuple[int, str]:
    """The status and description of a domain refusal, as the spec's error list carries them."""
    named = refused.field if refused.where == "body" else None
    description = f"{FORM_NAMES.get(named, named)}: {refused}" if named else str(refused)
    return GEOREPORT_STATUS[refused.kind], description


def routes(method: str, path: str, **kwargs):
    """Register a path with and without its trailing slash, so neither form redirects."""
    def register(endpoint):
        router.add_api_route(PREFIX + path, endpoint, methods=[method], **kwargs)
        router.add_api_route(PREFIX + path + "/", endpoint, methods=[method], include_in_schema=False, **kwargs)
        return endpoint
    return register


def _jurisdiction(value: str | None) -> None:
    # One jurisdiction per server: the spec lets such a server ignore the parameter; it is still
    # bounded so a bad client learns of its mistake rather than sending megabytes.
    if value is not None and len(value) > 255:
        raise Open311Problem(400, "jurisdiction_id is longer than 255 characters")


# --- rate limits: one moving window per client key, kept in Redis so every API process shares it ---

_limiter: dict[str, Any] = {}


def _rate_limiter(url: str):
    from limits.storage import storage_from_string
    from limits.strategies import MovingWindowRateLimiter

    if url not in _limiter:
        _limiter.clear()
        _limiter[url] = MovingWindowRateLimiter(storage_from_string(url))
    return _limiter[url]


def check_rate(client: stored.Open311Client) -> None:
    from limits import parse

    from appealflow.redis_url import redis_url

    limit = parse(client.rate_limit)
    try:
        limiter = _rate_limiter(redis_url())
        if limiter.hit(limit, "open311", str(client.id)):
            return
        reset = limiter.get_window_stats(limit, "open311", str(client.id)).reset_time
    except Exception:  # Redis down: filing an appeal matters more than counting it
        log.exception("open311 rate limit not checked", extra={"client": client.name})
        return
    raise Open311Problem(429, f"rate limit {client.rate_limit} exceeded for this api_key; retry later "
                                   "/ 请求过于频繁，请稍后再试", retry_after=max(1, int(reset - time.time()) + 1))


def _client(session: Session, key: str | None) -> stored.Open311Client:
    client = wire.client_of(session, key)
    check_rate(client)
    return client


# --- endpoints ------------------------------------------------------------------------------------

@routes("GET", "/services.{fmt}")
def service_list(fmt: str, request: Request, session: SessionDep) -> Response:
    """Every category of the city's catalogue as a service (GET Service List)."""
    def produce():
        _jurisdiction(request.query_params.get("jurisdiction_id"))
        return render(fmt, "services", wire.services(session))
    return answer(fmt, produce)


@routes("GET", "/services/{service_code}.{fmt}")
def service_definition(service_code: str, fmt: str, request: Request, session: SessionDep) -> Response:
    """The attributes a request for this service may carry (GET Service Definition)."""
    def produce():
        _jurisdiction(request.query_params.get("jurisdiction_id"))
        return render(fmt, "service_definition", wire.service_definition(session, service_code))
    return answer(fmt, produce)


async def _form(request: Request) -> list[tuple[str, str]] | None:
    """The posted form's fields in order, repeated keys kept; None if the body is not a form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    form = await request.form(max_fields=500)
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


def _problem_from(error: ValidationError) -> Open311Problem:
    names = {"requester": "email or phone", "location": "location", "title": "attribute[title]",
             "text": "description"}
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    field = names.get(str(first["loc"][0]), where)
    if first["loc"][0] == "requester" and len(first["loc"]) > 1:
        field = {"phone": "phone", "email": "email", "name": "first_name/last_name"}.get(str(first["loc"][1]), where)
    return Open311Problem(400, f"{field}: {first['msg']}")


@routes("POST", "/requests.{fmt}")
def create_request(fmt: str, request: Request, unit: UnitOfWorkDep, settings: SettingsDep,
                   form: Annotated[list[tuple[str, str]] | None, Depends(_form)]) -> Response:
    """File an appeal (POST Service Request): the same validation, idempotency, routing and
    notifications as any appeal. Needs the client's api_key; a retry with the same
    Idempotency-Key header returns the first answer."""
    session = unit.session

    def produce():
        if form is None:
            raise Open311Problem(400, "send the request as application/x-www-form-urlencoded")
        fields = dict(form)
        _jurisdiction(fields.get("jurisdiction_id") or request.query_params.get("jurisdiction_id"))
        client = _client(session, fields.get("api_key") or request.query_params.get("api_key"))
        submission = wire.read_submission(session, form)
        try:
            body = AppealIn.model_validate(submission.appeal)
        except ValidationError as invalid:
            raise _problem_from(invalid) from None
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 200:
            raise Open311Problem(400, "Idempotency-Key has 1 to 200 characters")
        new = body.to_new()
        appeal, created = receive_once(session, new, now=utcnow(), actor=f"open311:{client.name}",
                                       idempotency_key=f"open311:{client.id}:{key}" if key else None)
        row = stored.submission_of(session, appeal)
        if created:
            row = stored.record_submission(session, appeal, client, submission.extras)
            unit.wake(DISPATCH)
            unit.commit()
        headers = {"Location": str(request.url_for("open311_request", service_request_id=appeal.code,
                                                   fmt=fmt)),
                   # The requester's own secret, as the web intake gives it: to follow and rate the
                   # appeal on /appeals/{code}. The token is for clients written for batch servers.
                   "X-Access-Token": access_token(settings.signing_key(), appeal.code)}
        if row is not None:
            headers["X-Open311-Token"] = row.token
        return render(fmt, "service_requests", [views.created_view(appeal, row)], 201 if created else 200, headers)
    return answer(fmt, produce)


@routes("GET", "/requests.{fmt}")
def request_list(fmt: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Requests filed through Open311, newest first (GET Service Requests)."""
    def produce():
        params = request.query_params
        _jurisdiction(params.get("jurisdiction_id"))
        if params.get("api_key"):
            _client(session, params["api_key"])
        query = wire.read_query({k: ",".join(params.getlist(k)) if k in params else None for k in (
            "service_request_id", "service_code", "start_date", "end_date", "status", "page", "page_size")})
        appeals = stored.find_requests(session, query, now=utcnow())
        return render(fmt, "service_requests", views.views(session, appeals, settings.timezone, settings.public_url))
    return answer(fmt, produce)


@routes("GET", "/requests/{service_request_id}.{fmt}", name="open311_request")
def request_detail(service_request_id: str, fmt: str, request: Request, session: SessionDep,
                   settings: SettingsDep) -> Response:
    """One request (GET Service Request): a list of one, as the spec has it."""
    def produce():
        _jurisdiction(request.query_params.get("jurisdiction_id"))
        appeal = stored.find_request(session, service_request_id)
        if appeal is None:
            raise Open311Problem(404, f"service_request_id {service_request_id!r} not found / 没有这个诉求")
        return render(fmt, "service_requests", views.views(session, [appeal], settings.timezone, settings.public_url))
    return answer(fmt, produce)


@routes("GET", "/tokens/{token}.{fmt}")
def token_lookup(token: str, fmt: str, request: Request, session: SessionDep) -> Response:
    """The service_request_id behind a token (GET service_request_id from a token)."""
    def produce():
        _jurisdiction(request.query_params.get("jurisdiction_id"))
        appeal = stored.appeal_for_token(session, token)
        if appeal is None:
            raise Open311Problem(404, f"token {token!r} not found / 没有这个 token")
        return render(fmt, "service_requests", [dict(service_request_id=appeal.code, token=token)])
    return answer(fmt, produce)


@router.api_route(PREFIX + "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                  include_in_schema=False)
def not_found(rest: str, request: Request) -> Response:
    """Anything else under /open311/v2: the spec's 404, never a redirect or FastAPI's own body."""
    stem, _, fmt = rest.rstrip("/").rpartition(".")
    if fmt not in FORMATS:
        return error("xml", 404, f"no resource {rest!r}: paths end in .json or .xml, like services.json")
    return error(fmt, 404, f"no resource {stem!r} for {request.method}")


# --- admins manage the client apps -----------------------------------------------------------------

class ClientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    rate_limit: str = Field(default=stored.DEFAULT_RATE_LIMIT, max_length=40)


class ClientOut(BaseModel):
    name: str
    rate_limit: str
    revoked: bool
    api_key: str | None = None


def _admin_only(staff: CurrentStaff) -> None:
    if staff.role != Role.admin:
        raise HTTPException(403, "only an admin manages Open311 client apps")


AdminOnly = Depends(_admin_only)


@admin.get("/admin/open311/clients", response_model=list[ClientOut], dependencies=[AdminOnly])
def clients(session: SessionDep) -> list[ClientOut]:
    return [ClientOut(name=c.name, rate_limit=c.rate_limit, revoked=c.revoked) for c in stored.list_clients(session)]


@admin.post("/admin/open311/clients", status_code=201, response_model=ClientOut, dependencies=[AdminOnly])
def add_client(body: ClientIn, unit: UnitOfWorkDep) -> ClientOut:
    """Register a client app; its API key is in this answer and nowhere else, ever."""
    try:
        key = stored.add_client(unit.session, body.name, body.rate_limit)
        unit.commit()
    except stored.ClientError as refused:
        unit.rollback()
        raise HTTPException(422, str(refused)) from None
    return ClientOut(name=body.name.strip(), rate_limit=body.rate_limit, revoked=False, api_key=key)


@admin.post("/admin/open311/clients/{name}/revoke", response_model=ClientOut, dependencies=[AdminOnly])
def revoke_client(name: str, unit: UnitOfWorkDep) -> ClientOut:
    session = unit.session
    try:
        stored.revoke_client(session, name)
        unit.commit()
    except stored.ClientError as refused:
        unit.rollback()
        raise HTTPException(404, str(refused)) from None
    client = next(c for c in stored.list_clients(session) if c.name == name)
    return ClientOut(name=client.name, rate_limit=client.rate_limit, revoked=client.revoked)
