"""Staff pages: sign-in with an HttpOnly session cookie holding the same signed token as
`POST /auth/token`; the work queue (a department's, or the dispatcher's triage); an appeal's page
with exactly the actions this person may take now, each a form carrying the version it saw, and for a
consultation not yet routed, the policy base's best answers to answer it on the spot (当场答复); and the
operator's form for a hotline call."""

import base64
import re
import secrets
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from appealflow.api.pages.citizen import (
    cut_short,
    filing_errors,
    filing_form,
    idempotency_key,
    intake_body,
    posted_files,
    posted_filing,
    refused_files,
)
from appealflow.api.pages.client import UPLOAD_REFUSALS, Api, field_errors, upload_parts
from appealflow.api.pages.common import (
    STAFF_COOKIE,
    Words,
    check_csrf,
    finish,
    language,
    render,
    safe_next,
    set_staff_cookie,
)
from appealflow.api.pages.signed_in import OperatorPage, StaffPage
from appealflow.api.schemas import CODE_PATTERN
from appealflow.models.appeals.enums import OVERSIGHT_ROLES, Role
from appealflow.models.appeals.intake import districts
from appealflow.models.appeals.lifecycle import Action, IllegalTransition, NotPermitted, as_taken, check
from appealflow.models.appeals.tracking import FIXED_MASK, qr_code, workbench_link
from appealflow.models.appeals.workbench import answered_on_the_spot, department_may_take
from appealflow.models.city.department import Category, Department, by_name
from appealflow.models.city.people import Staff
from appealflow.models.city.reference import read_catalogue
from appealflow.models.clocks.states import clocks, met_times
from appealflow.models.oversight.supervision import at_risk
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

router = APIRouter(include_in_schema=False)
Code = Annotated[str, Path(pattern=CODE_PATTERN)]

# The actions a page offers, in the order shown; the state machine decides which apply now.
OFFERED = (Action.answer, Action.accept, Action.take, Action.assign, Action.contact, Action.approve_reply,
           Action.reject_reply, Action.reply, Action.record_contact, Action.request_info, Action.info_received,
           Action.request_extension, Action.decide_extension, Action.add_assist, Action.return_,
           Action.dispatch, Action.merge, Action.invalidate, Action.note)


def home_of(staff: Staff) -> str:
    return "/supervise" if staff.role in OVERSIGHT_ROLES else "/work"


def api_for(request: Request) -> Api:
    return Api(request, token=getattr(request.state, "renew_staff_token", None) or request.cookies.get(STAFF_COOKIE))


@router.get("/staff/sign-in")
async def sign_in_page(request: Request, next: Annotated[str | None, Query(max_length=500)] = None):
    return render(request, "sign_in.html", {"next": safe_next(next, ""), "error": None, "username": ""})


@router.post("/staff/sign-in")
async def sign_in(request: Request, username: Annotated[str, Form(max_length=100)],
                  password: Annotated[str, Form(max_length=200)], csrf: Annotated[str, Form(max_length=200)],
                  next: Annotated[str, Form(max_length=500)] = ""):
    check_csrf(request, csrf)
    answer = await Api(request).post("/auth/token", data={"username": username, "password": password})
    if answer.status_code != 200:
        error = "sign_in.wrong" if answer.status_code == 401 else (
            "sign_in.too_many" if answer.status_code == 429 else "sign_in.failed")
        return render(request, "sign_in.html", {"next": safe_next(next, ""), "error": error, "username": username},
                      status=answer.status_code if answer.status_code in (401, 422, 429) else 400)
    token = answer.json()["access_token"]
    request.state.renew_staff_token = None
    staff = await _staff_from(request, token)
    response = RedirectResponse(safe_next(next, home_of(staff) if staff else "/work"), status_code=303)
    set_staff_cookie(response, token, request)
    finish(request, response)
    return response


async def _staff_from(request: Request, token: str) -> Staff | None:
    def look() -> Staff | None:
        from appealflow.api.auth import optional_staff

        with session_scope(get_settings().sqlalchemy_url) as session:
            return optional_staff(request, session, get_settings(), token, None)

    return await run_in_threadpool(look)


@router.post("/staff/sign-out")
async def sign_out(request: Request, csrf: Annotated[str, Form(max_length=200)]):
    check_csrf(request, csrf)
    response = RedirectResponse("/staff/sign-in", status_code=303)
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response


def _catalogue_choice(category: str | None, district: str | None, street: str | None) -> list[str]:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return read_catalogue(session).departments_for(category, district, street)


def _reference_lists() -> tuple[list[Department], list[Category], set[str]]:
    with session_scope(get_settings().sqlalchemy_url) as session:
        departments = list(session.exec(select(Department).order_by(Department.code)))
        categories = list(session.exec(select(Category).order_by(Category.code)))
        # At risk as supervision defines it: the resolve clock has warned and not yet breached.
        risky = {a.code for a in at_risk(session, utcnow())}
        return departments, categories, risky


def _places() -> dict[str, dict]:
    """Districts by code, each with its streets by code: clerks read place names, not codes."""
    with session_scope(get_settings().sqlalchemy_url) as session:
        return {d["code"]: dict(d, streets={s["code"]: s for s in d["streets"]}) for d in districts(session)}


QUEUE_FILTERS = ("status", "category", "overdue", "q", "owner", "cursor")


@router.get("/work")
async def work_queue(request: Request, staff: StaffPage):
    wanted = {k: v for k, v in request.query_params.items() if k in QUEUE_FILTERS and v}
    answer = await api_for(request).get("/queue", params=wanted)
    departments, categories, risky = await run_in_threadpool(_reference_lists)
    now = utcnow()
    error = None if answer.status_code == 200 else field_errors(answer)
    page = answer.json() if answer.status_code == 200 else {"items": [], "next_cursor": None}
    for item in page["items"]:
        item["clocks"] = clocks(item, now, risky)
        item["received_at"] = datetime.fromisoformat(item["received_at"])
        if item.get("waiting_since"):  # a reply waiting for the head's review: for how long
            item["waiting_minutes"] = int((now - datetime.fromisoformat(item["waiting_since"])).total_seconds() // 60)
    next_url = None
    if page["next_cursor"]:
        next_url = "/work?" + urlencode({**{k: v for k, v in wanted.items() if k != "cursor"},
                                          "cursor": page["next_cursor"]})
    statuses = ("triage", "returned", "reopened") if staff.role == Role.dispatcher else (
        "dispatched", "accepted", "in_progress", "waiting_requester", "reviewing")
    orders: list[dict] = []  # the department's open supervision orders (督办单): first, above the queue
    if staff.role in (Role.handler, Role.department_head):
        found = await api_for(request).get("/staff/orders")
        orders = found.json() if found.status_code == 200 else []
        for order in orders:
            order["due_at"] = datetime.fromisoformat(order["due_at"])
            order["late"] = order["due_at"] < now
    return render(request, "queue.html", {
        "orders": orders, "notice": request.query_params.get("notice"), "bulk": _bulk_outcome(request),
        "departments_sorted": by_name(departments),
        "items": page["items"], "wanted": wanted, "next_url": next_url, "error": error, "statuses": statuses,
        "categories": [c for c in categories if c.parent_code is None] + [c for c in categories if c.parent_code],
        "departments": {d.code: d for d in departments}}, staff=staff, status=200 if error is None else 422)


BULK_WORDS = {"dispatch": "bulk.dispatched", "merge": "bulk.merged", "invalidate": "bulk.invalidated"}
# Why an appeal of a bulk action was left, by the status code its single action would have had.
BULK_REFUSALS = {409: "bulk.refused.conflict", 404: "bulk.refused.not_found", 403: "bulk.refused.forbidden",
                 422: "bulk.refused.invalid"}
_BULK_CODE = re.compile(r"^[0-9A-Z-]{6,20}$")


def _bulk_outcome(request: Request) -> dict | None:
    """What the last bulk action did, from the redirect's query (post/redirect/get)."""
    action = request.query_params.get("bulk")
    if action not in BULK_WORDS:
        return None
    done = [c for c in request.query_params.get("done", "").split(",") if _BULK_CODE.match(c)]
    refused = []
    for part in request.query_params.get("refused", "").split(","):
        code, _, status = part.partition(":")
        if _BULK_CODE.match(code):
            refused.append((code, BULK_REFUSALS.get(int(status) if status.isdigit() else 0, "bulk.refused.other")))
    return {"words": BULK_WORDS[action], "done": done, "refused": refused}


@router.post("/work/bulk")
async def bulk_action(request: Request, staff: StaffPage):
    """The dispatcher's list: one action for the appeals ticked, each checked on its own by the API;
    the list again, saying which were done and why any were not."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    appeals = []
    for value in form.getlist("appeals"):
        code, _, version = str(value).partition(":")
        if version.isdigit():
            appeals.append({"code": code, "version": int(version)})
    action = str(form.get("action") or "")
    body = {"action": action, "appeals": appeals, "department": str(form.get("department") or "") or None,
            "assisting": [str(a) for a in form.getlist("assisting") if a],
            "parent": str(form.get("parent") or "").strip().upper() or None,
            "reason": str(form.get("reason") or "").strip() or None}
    answer = await api_for(request).post("/staff/appeals/bulk", json=body)
    if answer.status_code != 200:  # nothing ticked, no such action: said above the list
        response = RedirectResponse("/work?notice=bulk_empty", status_code=303)
    else:
        results = answer.json()["results"]
        query = {"bulk": action, "done": ",".join(r["code"] for r in results if r["done"]),
                 "refused": ",".join(f"{r['code']}:{r['status_code']}" for r in results if not r["done"])}
        response = RedirectResponse("/work?" + urlencode(query), status_code=303)
    finish(request, response)
    return response


def allowed_actions(staff: Staff, appeal: dict) -> list[str]:
    """Exactly what the workbench would let this person do now: the state machine (models.lifecycle)
    and the workbench's own rules, from the same functions."""
    found = []
    for action in OFFERED:
        try:
            check(staff.role, appeal["status"], as_taken(action, appeal["return_count"]))
        except (NotPermitted, IllegalTransition):
            continue
        if not department_may_take(staff.role, staff.department_code, appeal["department"], action):
            continue
        if action == Action.answer and not answered_on_the_spot(appeal["type"]):
            continue
        if action == Action.decide_extension and not any(
                e["status"] == "pending" for e in appeal["extension_requests"]):
            continue
        if action == Action.take and appeal.get("assignee"):  # taken already: the head reassigns
            continue
        if action == Action.assign and not appeal.get("colleagues"):
            continue
        found.append(action.value)
    return found


async def _appeal_page(request: Request, staff: Staff, code: str, *, errors: dict | None = None,
                       failed: str | None = None, notice: str | None = None, status: int = 200,
                       refusal: str | None = None, shown: dict | None = None):
    """The appeal as this person may see it now; `shown` is one an action just answered with, for
    when the action took it out of their view (a dispatcher's answered consultation)."""
    if shown is None:
        answer = await api_for(request).get(f"/staff/appeals/{code}")
        if answer.status_code == 404:
            return render(request, "not_found.html", {}, staff=staff, status=404)
        if answer.status_code != 200:
            raise HTTPException(answer.status_code, field_errors(answer).get("form", "refused"))
        appeal = answer.json()
    else:
        appeal = shown
    departments, categories, risky = await run_in_threadpool(_reference_lists)
    places = await run_in_threadpool(_places)
    now = utcnow()
    appeal["clocks"] = clocks(appeal, now, risky, met_times(appeal["history"]))
    for event in appeal["history"]:
        event["at"] = datetime.fromisoformat(event["at"])
    appeal["received_at"] = datetime.fromisoformat(appeal["received_at"])
    for earlier in appeal.get("earlier", []):
        earlier["received_at"] = datetime.fromisoformat(earlier["received_at"])
    actions = allowed_actions(staff, appeal) if shown is None else []
    suggestions: list[dict] = []
    duplicates: list[dict] = []  # open appeals probably about the same matter, each one click from a merge
    suggested: list[str] = []  # departments offered first: routing's suggestions, then the catalogue's
    if "dispatch" in actions or "add_assist" in actions:
        live, duplicates = await _routing_help(request, code)
        suggestions = live or _recorded_suggestions(appeal)
        catalogue = await run_in_threadpool(_catalogue_choice, appeal.get("category"), appeal.get("district"),
                                            appeal.get("street"))
        suggested = list(dict.fromkeys([s["department"] for s in suggestions if s.get("department")] + catalogue))
    policy = None
    if "answer" in actions:
        asked = request.query_params.get("q") or f"{appeal['title']} {appeal['text']}"
        policy = await _policy_answers(request, asked)
    answered = next((e for e in reversed(appeal["history"]) if e["kind"] == "answer"), None)
    listed = await api_for(request).get(f"/staff/appeals/{code}/files")
    # The page cookie, not a bearer header, is what a browser sends: the files come through /work.
    files = [dict(f, added_at=datetime.fromisoformat(f["added_at"]),
                  urls={c: u.replace("/staff/appeals/", "/work/appeals/", 1) for c, u in f["urls"].items()})
             for f in (listed.json()["files"] if listed.status_code == 200 else [])]
    return render(request, "appeal.html", {
        "appeal": appeal, "actions": actions, "errors": errors or {}, "failed": failed,
        "notice": notice, "departments": departments, "by_code": {d.code: d for d in departments},
        "departments_sorted": by_name(departments), "suggested": suggested, "duplicates": duplicates,
        "categories": {c.code: c for c in categories}, "suggestions": suggestions, "policy": policy,
        "answered": answered, "refusal": refusal, "places": places, "work_order_qr": _work_order_qr(code),
        "printed_at": now, "files": files, "map_url": get_settings().map_url_template,
        "map_tiles": get_settings().map_tile_url, "map_attribution": get_settings().map_tile_attribution,
        "may_add_files": staff.role.value in ("handler", "department_head", "dispatcher", "supervisor"),
    }, staff=staff, status=status)


def _work_order_qr(code: str) -> str:
    """The printed work order's QR (print.css shows it only on paper): the appeal's workbench page, which
    asks whoever scans it to sign in; it carries no token. A data: URI, so printing needs no request."""
    png = qr_code(workbench_link(get_settings().public_url, code), "png", scale=3, mask=FIXED_MASK)
    return "data:image/png;base64," + base64.b64encode(png).decode()


POLICY_QUERY_MAX = 300  # what /policy/search takes


async def _policy_answers(request: Request, asked: str) -> dict:
    """The policy base's best entries for the consultation's words (or what the operator searched for),
    through the public search endpoint; `unavailable` when it could not answer (rate limit, outage)."""
    query = " ".join(asked.split())[:POLICY_QUERY_MAX]
    if len(query) < 2:
        return {"query": query, "found": False, "answers": [], "unavailable": False}
    answer = await api_for(request).get("/policy/search", params={"q": query, "limit": 3})
    if answer.status_code != 200:
        return {"query": query, "found": False, "answers": [], "unavailable": True}
    return {**answer.json(), "query": query, "unavailable": False}


async def _routing_help(request: Request, code: str) -> tuple[list[dict], list[dict]]:
    """Routing's suggestions and the probable duplicates, from the routing endpoint (none of either if
    it cannot answer now)."""
    answer = await api_for(request).get(f"/routing/suggestions/{code}")
    if answer.status_code != 200:
        return [], []
    body = answer.json()
    return body.get("suggestions", []), body.get("duplicates", [])


def _recorded_suggestions(appeal: dict) -> list[dict]:
    """The suggestions routing recorded when it sent the appeal to triage (the latest event that has
    them): department, category, probability and why."""
    for event in reversed(appeal["history"]):
        found = (event.get("detail") or {}).get("suggestions")
        if found:
            return [{"department": s.get("department"), "category": s.get("category"),
                     "confidence": s.get("probability"), "reason": s.get("why"), "keywords": s.get("keywords") or []}
                    for s in found if isinstance(s, dict)]
    return []


@router.get("/work/hotline")
async def hotline_page(request: Request, staff: OperatorPage):
    """An operator files what a caller says; other staff have no such page."""
    form = {"idempotency_key": secrets.token_urlsafe(18), "type": "complaint", "priority": "normal"}
    return await filing_form(request, form, {}, hotline=True, staff=staff)


@router.post("/work/hotline")
async def file_hotline(request: Request, staff: OperatorPage):
    form = await posted_filing(request)
    cut = cut_short(request, form)
    if cut is not None:
        return await filing_form(request, form, cut, status=413, hotline=True, staff=staff)
    parts = await posted_files(request)
    files_refused = refused_files(parts, Words(language(request)))
    if files_refused is not None:
        return await filing_form(request, form, files_refused[0], status=files_refused[1], hotline=True, staff=staff)
    body = intake_body(form) | {"channel": "hotline", "priority": form["priority"] or "normal"}
    if form["type"] == "consultation" and form["handling"] != "route":  # answered on the spot: held for it
        body["answer_now"] = True
    api = api_for(request)
    response = await api.post("/appeals", json=body, headers={"Idempotency-Key": idempotency_key(form)})
    if response.status_code in (200, 201):
        code = response.json()["code"]
        notice = None
        # What the caller sent by other means (a photo over a messaging app): the requester's to see.
        if parts and response.status_code == 201:
            sent = await api.post(f"/staff/appeals/{code}/files", files=parts,
                                  data={"visibility": "public", "purpose": "filing"})
            notice = None if sent.status_code == 201 else "files_refused"
        target = str(request.url_for("staff_appeal_page", code=code)) + (f"?notice={notice}" if notice else "")
        return RedirectResponse(target, status_code=303)
    return await filing_form(request, form, filing_errors(response, Words(language(request))),
                             status=response.status_code, hotline=True, staff=staff)


@router.get("/work/appeals/{code}", name="staff_appeal_page")
async def appeal_page(request: Request, code: Code, staff: StaffPage,
                      notice: Annotated[str | None, Query(max_length=40)] = None):
    return await _appeal_page(request, staff, code,
                              notice=notice if notice in ("done", "answered", "files_refused") else None)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _in_city(local: str) -> str:
    """A datetime-local field's value (the city's wall time, no zone) as a time with its zone; left
    as typed when it is not one, for the API to refuse by name."""
    try:
        moment = datetime.fromisoformat(local)
    except ValueError:
        return local
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(get_settings().timezone))).isoformat()


# Why an answer on the spot was refused, in the page's words, by the field the API named.
ANSWER_REFUSALS = {"policy_answer": "answer.refused.entry", "action": "answer.refused.type",
                   "text": "answer.refused.text"}


@router.get("/work/appeals/{code}/files/{file_id}/{copy}")
async def staff_file(request: Request, code: Code, file_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                     copy: Literal["thumb", "screen", "file"], staff: StaffPage):
    """A file of the appeal, through the API's access rules (another department's: 404)."""
    answer = await api_for(request).get(f"/staff/appeals/{code}/files/{file_id}/{copy}")
    if answer.status_code != 200:
        return render(request, "not_found.html", {}, staff=staff, status=404)
    kept = ("content-type", "content-disposition", "x-content-type-options", "content-security-policy",
            "cache-control")
    return Response(answer.content, headers={k: v for k, v in answer.headers.items() if k in kept})


@router.post("/work/appeals/{code}/files")
async def add_staff_files(request: Request, code: Code, staff: StaffPage, csrf: Annotated[str, Form(max_length=200)],
                          visibility: Annotated[Literal["public", "staff"], Form()] = "staff",
                          purpose: Annotated[Literal["reply", "contact", "note"], Form()] = "note",
                          files: Annotated[list[UploadFile] | None, File()] = None):
    """Evidence for a reply (the requester sees it) or files for the department's own record."""
    check_csrf(request, csrf)
    parts = await upload_parts(files)
    words = Words(language(request))
    if not parts:
        return await _appeal_page(request, staff, code, errors={"files": words("files.required")}, failed="files",
                                  status=422)
    answer = await api_for(request).post(f"/staff/appeals/{code}/files", files=parts,
                                         data={"visibility": visibility, "purpose": purpose})
    if answer.status_code == 404:
        return render(request, "not_found.html", {}, staff=staff, status=404)
    if answer.status_code != 201:
        refused = UPLOAD_REFUSALS.get(answer.status_code, "files.refused")
        return await _appeal_page(request, staff, code, errors={"files": words(refused)}, failed="files",
                                  status=answer.status_code)
    return RedirectResponse(str(request.url_for("staff_appeal_page", code=code)), status_code=303)


@router.post("/work/appeals/{code}/route-now")
async def route_now(request: Request, code: Code, staff: OperatorPage):
    """The operator routes a consultation they held to answer on the spot after all."""
    form = await request.form()
    check_csrf(request, _text(form.get("csrf")))
    answer = await api_for(request).post(f"/staff/appeals/{code}/route-now")
    if answer.status_code == 404:
        return render(request, "not_found.html", {}, staff=staff, status=404)
    # 409: the hold had ended already (answered, or routed when it ran out): the page shows which.
    return RedirectResponse(str(request.url_for("staff_appeal_page", code=code)), status_code=303)


@router.post("/work/appeals/{code}/{action}")
async def take_action(request: Request, code: Code, action: Action, staff: StaffPage):
    form = await request.form()
    check_csrf(request, _text(form.get("csrf")))
    body: dict = {"version": _text(form.get("version"))}
    for name in ("reason", "text", "department", "parent", "extra", "extension_id", "policy_answer", "assignee",
                 "method", "outcome"):
        value = _text(form.get(name)).strip()
        if value:
            body[name] = value
    if contacted_at := _text(form.get("contacted_at")).strip():
        body["contacted_at"] = _in_city(contacted_at)
    if form.getlist("assisting"):
        body["assisting"] = [_text(code_) for code_ in form.getlist("assisting") if _text(code_)]
    if form.get("approve") in ("yes", "no"):
        body["approve"] = form.get("approve") == "yes"
    answer = await api_for(request).post(f"/staff/appeals/{code}/{action.value}", json=body)
    if answer.status_code == 200:
        still_mine = (await api_for(request).get(f"/staff/appeals/{code}")).status_code == 200
        if action == Action.answer and not still_mine:
            # A dispatcher's view holds only what awaits routing: show what the answer made of it once.
            return await _appeal_page(request, staff, code, notice="answered", shown=answer.json())
        notice = "answered" if action == Action.answer else "done"
        target = f"/work/appeals/{code}?notice={notice}" if still_mine else "/work?" + urlencode({"done": code})
        response = RedirectResponse(target, status_code=303)
        finish(request, response)
        return response
    if answer.status_code == 409:
        # Someone acted first (or the status moved on): show the appeal as it is now.
        return await _appeal_page(request, staff, code, failed=action.value, notice="stale", status=409)
    if answer.status_code == 404:
        return render(request, "not_found.html", {}, staff=staff, status=404)
    errors = field_errors(answer) if answer.status_code == 422 else {"form": field_errors(answer).get("form", "")}
    refusal = None
    if action == Action.answer:
        refusal = "answer.refused.role" if answer.status_code == 403 else next(
            (key for field, key in ANSWER_REFUSALS.items() if field in errors), "answer.refused")
    return await _appeal_page(request, staff, code, errors=errors, failed=action.value, status=answer.status_code,
                              refusal=refusal)


@router.post("/work/orders/{order_id}/answer")
async def answer_order(request: Request, order_id: Annotated[int, Path(ge=1, le=2**31 - 1)], staff: StaffPage,
                       csrf: Annotated[str, Form(max_length=200)], answer: Annotated[str, Form(max_length=5000)] = ""):
    """The department's answer to a supervision order, from the top of its queue."""
    check_csrf(request, csrf)
    sent = await api_for(request).post(f"/staff/orders/{order_id}/answer", json={"answer": answer})
    notice = "order_answered" if sent.status_code == 200 else "order_refused"
    response = RedirectResponse(f"/work?notice={notice}", status_code=303)
    finish(request, response)
    return response
