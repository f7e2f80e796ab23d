"""The citizen's pages: file an appeal, the confirmation with code, link and QR code, the tracking
page, rating and follow-up. Each calls the public JSON API (intake, tracking, rating, information)."""

import io
import re
import secrets
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

import segno
from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from appealflow.api.pages.client import UPLOAD_REFUSALS, Api, field_errors, upload_parts
from appealflow.api.pages.common import Words, check_csrf, finish, language, render
from appealflow.api.schemas import CODE_PATTERN
from appealflow.models.appeals.enums import AppealType
from appealflow.models.appeals.privacy import NOTICE
from appealflow.models.appeals.tracking import mask_email, mask_phone
from appealflow.models.city.reference import read_reference
from appealflow.models.clocks.deadlines import deadlines_for, policy_for
from appealflow.models.files.attachments import MAX_AT_ONCE, FileRefused, checked_uploads
from appealflow.models.refusal import Kind
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

router = APIRouter(include_in_schema=False)
Code = Annotated[str, Path(pattern=CODE_PATTERN)]
Token = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_=-]{1,100}$")]
TYPES = [t.value for t in AppealType]
SATISFACTION = ("satisfied", "basically_satisfied", "unsatisfied")


def tracking_link(request: Request, code: str, token: str) -> str:
    return str(request.url_for("track_page", code=code)) + "?" + urlencode({"token": token})


@router.get("/")
async def home(request: Request):
    return render(request, "home.html", {})


async def _reference(api: Api) -> tuple[list, list]:
    districts = (await api.get("/reference/districts")).json()
    categories = (await api.get("/reference/categories")).json()
    return districts, categories


async def filing_form(request: Request, form: dict, errors: dict, status: int = 200, *, hotline: bool = False,
                      staff=None):
    """The filing form: a citizen's at /file, or, with `hotline`, an operator's for a caller."""
    districts, categories = await _reference(Api(request))
    parents = [c for c in categories if c["parent"] is None]
    children = {p["code"]: [c for c in categories if c["parent"] == p["code"]] for p in parents}
    settings = get_settings()
    return render(request, "file.html", {"form": form, "errors": errors, "types": TYPES, "districts": districts,
                                         "parents": parents, "children": children, "hotline": hotline,
                                         "hold_minutes": settings.answer_hold_seconds // 60,
                                         "allow_name_withheld": settings.allow_name_withheld,
                                         "privacy_notice": NOTICE[language(request)]},
                  staff=staff, status=status)


@router.get("/file")
async def filing_page(request: Request):
    # One key per form shown: a double click, or a retry after a lost answer, files one appeal.
    return await filing_form(request, {"idempotency_key": secrets.token_urlsafe(18), "type": "complaint"}, {})


TEXT_LIMIT = 5000  # what intake takes as an appeal's text (api/schemas.py)
FILING_FIELDS = ("type", "category", "title", "text", "district", "street", "address", "name", "phone", "email",
                 "language", "idempotency_key", "csrf", "priority", "handling", "anonymous", "name_withheld",
                 "privacy", "lat", "long", "accuracy_m")


def _text(value) -> str:
    """A form value as text; a file where text belongs counts as nothing."""
    return value if isinstance(value, str) else ""


def _blank_to_none(value: str | None) -> str | None:
    return value.strip() or None if isinstance(value, str) else value


async def posted_filing(request: Request) -> dict:
    posted = await request.form()
    form = {name: _text(posted.get(name)) for name in FILING_FIELDS}
    check_csrf(request, form.pop("csrf"))
    return form


def intake_body(form: dict) -> dict:
    """POST /appeals's body from the filing form's fields."""
    body: dict = {
        "type": form["type"], "title": form["title"], "text": form["text"],
        "category": _blank_to_none(form["category"]),
        "location": {"district": _blank_to_none(form["district"]), "street": _blank_to_none(form["street"]),
                     "address": _blank_to_none(form["address"]), **_position(form)},
        "requester": {"name": _blank_to_none(form["name"]), "phone": _blank_to_none(form["phone"]),
                      "email": _blank_to_none(form["email"])},
    }
    if form["language"] in ("zh", "en"):
        body["language"] = form["language"]
    if form["anonymous"]:  # no contact on purpose: whatever was typed in the contact fields is not sent
        body["anonymous"] = True
        body["requester"] |= {"phone": None, "email": None}
    if form["name_withheld"]:
        body["name_withheld"] = True
    if form["privacy"]:
        body["privacy_consent"] = True
    return body


def _position(form: dict) -> dict:
    """The browser's position, when the citizen gave it; a malformed one is dropped, not an error
    (the hidden fields are the script's, and the appeal files without a position)."""
    try:
        lat, long = float(form["lat"]), float(form["long"])
    except ValueError:
        return {}
    if not (-90 <= lat <= 90 and -180 <= long <= 180):
        return {}
    try:
        accuracy = min(max(float(form["accuracy_m"]), 0.0), 100_000.0)
    except ValueError:
        accuracy = None
    return {"lat": lat, "long": long, "accuracy_m": accuracy}


async def posted_files(request: Request) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The photos and documents a filing form carried (sent as multipart), as the API's `files`."""
    posted = await request.form()
    return await upload_parts([f for f in posted.getlist("files") if not isinstance(f, str)])


def refused_files(parts: list, words: Words) -> tuple[dict, int] | None:
    """Why the files would be refused, asked before filing, so no appeal is filed without the photos
    its citizen meant to send (the API asks again when they come)."""
    settings = get_settings()
    try:
        checked_uploads([(name, data) for _, (name, data, _) in parts], max_file_bytes=settings.max_file_bytes,
                        max_per_appeal=min(MAX_AT_ONCE, settings.max_files_per_appeal))
    except FileRefused as refused:
        if refused.kind == Kind.too_large:
            return {"files": words("files.too_large")}, 413
        return {"files": words("files.unsupported")}, 415
    return None


def unconsented(form: dict, words: Words) -> dict | None:
    """A citizen files only once they have agreed to the privacy notice (an operator's form records
    that the caller was told, when they were)."""
    return None if form["privacy"] else {"privacy": words("file.privacy_needed")}


def idempotency_key(form: dict) -> str:
    """The form's own key (one per form shown), or a fresh one when it came back mangled."""
    sent = form["idempotency_key"]
    key = sent if 10 <= len(sent) <= 64 and sent.isascii() and sent.isprintable() else secrets.token_urlsafe(18)
    form["idempotency_key"] = key
    return key


# The form's fields as their labels name them, for messages that say which field is wrong.
FIELD_LABELS = {"type": "file.type", "category": "file.category", "title": "file.title_field", "text": "file.text",
                "district": "file.district", "street": "file.street", "address": "file.address",
                "name": "file.name", "phone": "file.phone", "email": "file.email"}


def filing_errors(response, words: Words) -> dict:
    """Intake's refusal by form field, in the page's words: the API's 422 names each field and the
    kind of problem (pydantic's error types, the domain's "中文 / English" messages), and this says
    it as the catalogue does, never in the validation library's English."""
    if response.status_code == 413:
        return {"text": words("error.too_large", n=TEXT_LIMIT)}
    if response.status_code != 422:
        return {"form": field_errors(response).get("form", "")}
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if not isinstance(detail, list):
        return {"form": _in_language(str(detail or ""), words.lang)}
    errors: dict[str, str] = {}
    for item in detail:
        loc = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "header")]
        name = loc[-1] if loc else "form"
        name = {"requester": "phone", "Idempotency-Key": "form", "location": "district"}.get(name, name)
        errors.setdefault(name, _error_words(item, name, words))
    return errors


def _in_language(message: str, lang: str) -> str:
    """One half of the domain's "中文 / English" message; the whole of any other."""
    message = message.removeprefix("Value error, ")
    if " / " in message:
        zh, en = message.split(" / ", 1)
        return zh if lang == "zh" else en
    return message


def _error_words(item: dict, name: str, words: Words) -> str:
    label = words(FIELD_LABELS[name]).rstrip(" *") if name in FIELD_LABELS else name
    kind, ctx = item.get("type", ""), item.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and int(ctx.get("min_length", 1)) <= 1):
        return words("error.required", field=label)
    if kind == "string_too_short":
        return words("error.too_short", field=label, n=ctx.get("min_length"))
    if kind == "string_too_long":
        return words("error.too_long", field=label, n=ctx.get("max_length"))
    if kind == "string_pattern_mismatch":
        return words(f"error.pattern.{name}") if words.has(f"error.pattern.{name}") else \
            words("error.invalid", field=label)
    if kind in ("literal_error", "enum"):
        return words("error.choice", field=label)
    message = _in_language(str(item.get("msg", "")), words.lang)
    # The domain speaks in both languages; anything else is the library's, said in our words instead.
    return message if " / " in str(item.get("msg", "")) else words("error.invalid", field=label)


def cut_short(request: Request, form: dict) -> dict | None:
    """The errors to show when the form came past the size limit (api/errors.py cut it): the text,
    as far as it came, stays in the form to be shortened; nothing is filed."""
    if "body_cut_at" not in request.scope.get("state", {}):
        return None
    form["text"] = form["text"].rstrip("\ufffd")
    return {"text": Words(language(request))("error.too_large", n=TEXT_LIMIT)}


@router.post("/file")
async def file_appeal(request: Request):
    form = await posted_filing(request)
    cut = cut_short(request, form)
    if cut is not None:
        return await filing_form(request, form, cut, status=413)
    words = Words(language(request))
    refused = unconsented(form, words)
    if refused is not None:
        return await filing_form(request, form, refused, status=422)
    parts = await posted_files(request)
    files_refused = refused_files(parts, words)
    if files_refused is not None:
        return await filing_form(request, form, files_refused[0], status=files_refused[1])
    body = intake_body(form)
    response = await Api(request).post("/appeals", json=body, headers={"Idempotency-Key": idempotency_key(form)})
    if response.status_code in (200, 201):
        created = response.json()
        query = {"token": created["access_token"]}
        # A repeated form (201 only the first time) brings its files only once.
        if parts and response.status_code == 201:
            sent = await Api(request).post(f"/appeals/{created['code']}/files", params=query, files=parts)
            if sent.status_code != 201:
                query["files"] = "refused"
        target = str(request.url_for("filed_page", code=created["code"])) + "?" + urlencode(query)
        return RedirectResponse(target, status_code=303)
    return await filing_form(request, form, filing_errors(response, Words(language(request))),
                             status=response.status_code)


async def _appeal(request: Request, code: str, token: str | None):
    if not token:
        return None
    found = await Api(request).get(f"/appeals/{code}", params={"token": token})
    return found.json() if found.status_code == 200 else None


def _not_found(request: Request):
    return render(request, "track_lookup.html", {"not_found": True}, status=404)


@router.get("/t/{code}/filed", name="filed_page")
async def filed_page(request: Request, code: Code, token: Token = None,
                     files: Annotated[Literal["refused"] | None, Query()] = None):
    appeal = await _appeal(request, code, token)
    if appeal is None:
        return _not_found(request)
    kept = (await Api(request).get(f"/appeals/{code}/files", params={"token": token})).json().get("files", [])
    expected = None if appeal["deadlines"].get("resolve_due_at") else await run_in_threadpool(_expected, appeal)
    requester = appeal["requester"]
    channel = None  # anonymous: nothing will be sent
    if requester.get("email"):
        channel = ("email", mask_email(requester["email"]))
    elif requester.get("phone"):
        channel = ("sms", mask_phone(requester["phone"]))
    return render(request, "filed.html", {
        "appeal": appeal, "token": token, "link": tracking_link(request, code, token or ""),
        "due": {k: datetime.fromisoformat(v) for k, v in appeal["deadlines"].items() if v},
        "expected": expected, "channel": channel, "files": kept, "files_refused": files == "refused",
        "triage_hours": get_settings().triage_within_working_hours})


def _expected(appeal: dict) -> dict[str, datetime]:
    """Not routed yet (the page comes before routing has run): the deadlines its policy would give
    if it were dispatched now, to say by when to expect an answer."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        ref = read_reference(session, hours=settings.working_hours, zone=settings.timezone)
    lineage = ref.catalogue.lineage(appeal["category"]) if appeal.get("category") else []
    found = deadlines_for(policy_for(ref.policies, appeal["type"], appeal["priority"], lineage), utcnow(),
                          ref.calendar)
    return {"accept_due_at": found.accept_due_at, "resolve_due_at": found.resolve_due_at}


@router.get("/t/{code}/qr.svg", name="qr_code")
async def qr_code(request: Request, code: Code, token: Token = None):
    if await _appeal(request, code, token) is None:
        return Response(status_code=404)
    out = io.BytesIO()
    qr = segno.make(tracking_link(request, code, token or ""), error="m")
    qr.save(out, kind="svg", scale=5, border=4, title=code)
    return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/track")
async def track_lookup(request: Request, code: Annotated[str | None, Query(max_length=40)] = None,
                       token: Annotated[str | None, Query(max_length=200)] = None):
    """The look-up form; the link's code and token (as printed beside a QR) go straight to the appeal.
    Phone digits are never read from a URL, where access logs and browser history would keep them:
    an old link that has them gets the form."""
    code = (code or "").strip().upper()
    if code and token and token.strip():
        return RedirectResponse(tracking_link(request, code, token.strip()), status_code=303)
    return render(request, "track_lookup.html", {"not_found": False, "form": {"code": code}})


@router.post("/track")
async def track_lookup_sent(request: Request):
    """By the link's token, or, as hotline callers follow up, by the code and the phone's last four
    digits (sent in the form's body): a view to read only (rating, adding information and
    withdrawing need the link)."""
    form = await request.form()
    check_csrf(request, _field(form, "csrf"))
    code, token, phone = (_field(form, name).strip() for name in ("code", "token", "phone"))
    code = code.upper()[:40]
    if code and token:
        return RedirectResponse(tracking_link(request, code, token[:200]), status_code=303)
    if not (code and phone):
        return render(request, "track_lookup.html", {"not_found": True, "refusal": "track.need_both",
                                                     "form": {"code": code}}, status=422)
    if not re.fullmatch(r"[0-9]{4}", phone):
        return render(request, "track_lookup.html", {"not_found": True, "refusal": "track.phone_invalid",
                                                     "form": {"code": code}}, status=422)
    found = await Api(request).get(f"/appeals/{code}", params={"phone_last4": phone})
    if found.status_code == 200:
        appeal = _readable(found.json())
        return render(request, "track.html", {"appeal": appeal, "token": None, "errors": {}, "by_phone": True,
                                              "notice": None,
                                              "satisfaction": SATISFACTION, "link": None})
    # Anything else (no such code, the wrong digits, a code that cannot be one) is "not found".
    refusal = "track.too_many" if found.status_code == 429 else "track.not_found"
    response = render(request, "track_lookup.html", {"not_found": True, "refusal": refusal, "form": {"code": code}},
                      status=429 if found.status_code == 429 else 404)
    if "retry-after" in found.headers:
        response.headers["Retry-After"] = found.headers["retry-after"]
    return response


def _field(form, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _readable(appeal: dict) -> dict:
    """The API's appeal with its times as datetimes, for the templates to write as people do."""
    for event in appeal["history"]:
        event["at"] = datetime.fromisoformat(event["at"])
    for key, value in appeal["deadlines"].items():
        appeal["deadlines"][key] = datetime.fromisoformat(value) if value else None
    return appeal


NOTICES = ("rated", "information_sent", "information_added", "withdrawn", "files_added")


@router.get("/t/{code}", name="track_page")
async def track_page(request: Request, code: Code, token: Token = None,
                     notice: Annotated[str | None, Query(max_length=40)] = None):
    return await _track(request, code, token, notice=notice if notice in NOTICES else None)


async def _track(request: Request, code: str, token: str | None, *, errors: dict | None = None,
                 status: int = 200, notice: str | None = None):
    appeal = await _appeal(request, code, token)
    if appeal is None:
        return _not_found(request)
    _readable(appeal)
    shown = await Api(request).get(f"/appeals/{code}/files", params={"token": token}) if token else None
    files = shown.json()["files"] if shown is not None and shown.status_code == 200 else []
    return render(request, "track.html", {"appeal": appeal, "token": token, "errors": errors or {},
                                          "notice": notice, "satisfaction": SATISFACTION, "files": files,
                                          "link": tracking_link(request, code, token or "")}, status=status)


@router.get("/t/{code}/rate")
async def rating_page(request: Request, code: Code, token: Token = None):
    return await _track(request, code, token)


@router.post("/t/{code}/rate")
async def rate(request: Request, code: Code, token: Annotated[str, Form(max_length=200)],
               csrf: Annotated[str, Form(max_length=200)], solved: Annotated[str | None, Form(max_length=10)] = None,
               satisfaction: Annotated[str | None, Form(max_length=40)] = None,
               comment: Annotated[str, Form(max_length=2000)] = ""):
    check_csrf(request, csrf)
    errors = {}
    if solved not in ("yes", "no"):
        errors["solved"] = "required"
    if satisfaction not in SATISFACTION:
        errors["satisfaction"] = "required"
    if not errors:
        rating = {"solved": solved == "yes", "satisfaction": satisfaction}
        if comment.strip():
            rating["comment"] = comment.strip()
        answer = await Api(request).post(f"/appeals/{code}/rating", params={"token": token}, json=rating)
        if answer.status_code == 200:
            return _back_to(request, code, token, "rated")
        if answer.status_code == 404:
            return _not_found(request)
        errors = {"form": field_errors(answer).get("form", "")} if answer.status_code != 422 else field_errors(answer)
        return await _track(request, code, token, errors=errors, status=answer.status_code)
    return await _track(request, code, token, errors=errors, status=422)


@router.post("/t/{code}/information")
async def give_information(request: Request, code: Code, token: Annotated[str, Form(max_length=200)],
                           csrf: Annotated[str, Form(max_length=200)],
                           text: Annotated[str, Form(max_length=10000)] = "",
                           asked: Annotated[str, Form(max_length=5)] = ""):
    """What the department asked for (the paused clock resumes), or more the requester wants to say
    while the appeal is open."""
    check_csrf(request, csrf)
    answer = await Api(request).post(f"/appeals/{code}/information", params={"token": token}, json={"text": text})
    if answer.status_code == 200:
        return _back_to(request, code, token, "information_sent" if asked else "information_added")
    if answer.status_code == 404:
        return _not_found(request)
    errors = field_errors(answer) if answer.status_code == 422 else {"form": field_errors(answer).get("form", "")}
    return await _track(request, code, token, errors=errors, status=answer.status_code)


@router.post("/t/{code}/files")
async def add_files(request: Request, code: Code, token: Annotated[str, Form(max_length=200)],
                    csrf: Annotated[str, Form(max_length=200)],
                    files: Annotated[list[UploadFile] | None, File()] = None):
    """Photos or documents the requester adds while the appeal is open (the plain form: no script
    needed), handed to the API, which checks them by content."""
    check_csrf(request, csrf)
    words = Words(language(request))
    parts = await upload_parts(files)
    if not parts:
        return await _track(request, code, token, errors={"files": words("files.required")}, status=422)
    answer = await Api(request).post(f"/appeals/{code}/files", params={"token": token}, files=parts)
    if answer.status_code == 201:
        return _back_to(request, code, token, "files_added")
    if answer.status_code == 404:
        return _not_found(request)
    refused = UPLOAD_REFUSALS.get(answer.status_code, "files.refused")
    return await _track(request, code, token, errors={"files": words(refused)}, status=answer.status_code)


@router.post("/t/{code}/withdraw")
async def withdraw(request: Request, code: Code, token: Annotated[str, Form(max_length=200)],
                   csrf: Annotated[str, Form(max_length=200)], reason: Annotated[str, Form(max_length=1000)] = ""):
    check_csrf(request, csrf)
    answer = await Api(request).post(f"/appeals/{code}/withdraw", params={"token": token},
                                     json={"reason": reason.strip()} if reason.strip() else None)
    if answer.status_code == 200:
        return _back_to(request, code, token, "withdrawn")
    if answer.status_code == 404:
        return _not_found(request)
    errors = field_errors(answer) if answer.status_code == 422 else {"form": field_errors(answer).get("form", "")}
    return await _track(request, code, token, errors=errors, status=answer.status_code)


def _back_to(request: Request, code: str, token: str, notice: str) -> RedirectResponse:
    # Post/redirect/get: reloading the page afterwards never posts twice.
    response = RedirectResponse(tracking_link(request, code, token) + f"&notice={notice}", status_code=303)
    finish(request, response)
    return response
