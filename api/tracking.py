"""Tracking: the requester follows their appeal through the link in every message (its code and
secret token), or, as hotline callers do, with the code and the last four digits of their phone.
Through the link they also rate the reply, add information and withdraw."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from appealflow.api import ratelimit, schemas
from appealflow.api.deps import RedisDep, SessionDep, SettingsDep
from appealflow.models.appeals.appeal import Appeal, AppealAssist
from appealflow.models.appeals.enums import AppealStatus, Role
from appealflow.models.appeals.intake import history
from appealflow.models.appeals.lifecycle import Action
from appealflow.models.appeals.steps import ActionInput
from appealflow.models.appeals.tracking import (
    access_token,
    mask_email,
    mask_name,
    mask_phone,
    phone_matches,
    public_timeline,
    qr_code,
    token_matches,
    tracking_view,
)
from appealflow.models.appeals.workbench import act
from appealflow.models.city.department import Department
from appealflow.models.city.people import Staff
from appealflow.models.clocks.calendar import load_calendar
from appealflow.models.storage.columns import utcnow
from appealflow.settings import Settings
from appealflow.workers.queues import DELIVERY, wake_quietly

# Every look-up tries a token: limited per address, so codes and tokens cannot be guessed at speed.
router = APIRouter(tags=["tracking"], dependencies=[Depends(ratelimit.limit("tracking"))])


REQUESTER = Staff(id=0, username="requester", role=Role.requester, department_code=None)
# Tokens are URL-safe base64; anything else is refused by name before it reaches a comparison.
TOKEN_PATTERN = r"^[A-Za-z0-9_=-]{1,100}$"
TokenQuery = Annotated[str | None, Query(pattern=TOKEN_PATTERN)]
TokenHeader = Annotated[str | None, Header(pattern=TOKEN_PATTERN)]
PhoneQuery = Annotated[str | None, Query(pattern=r"^[0-9]{4}$", description=(
    "the last four digits of the requester's phone: opens the appeal without the link, as hotline "
    "callers follow up; a few tries per hour"))]
LanguageQuery = Annotated[Literal["zh", "en"] | None, Query(description="the view's language (default: the appeal's)")]
Code = Annotated[str, Path(pattern=schemas.CODE_PATTERN)]
NOT_FOUND = "没有这个编号和令牌的诉求 / no appeal with this code and token"


def _own_appeal(session: Session, settings: Settings, code: str, token: str | None) -> Appeal:
    """The appeal, for whoever holds its access token; 404 otherwise, so a wrong token cannot tell a
    real code from a made-up one."""
    if not token_matches(settings.signing_key(), code, token):
        raise HTTPException(404, NOT_FOUND)
    appeal = session.exec(select(Appeal).where(col(Appeal.code) == code)).first()
    if appeal is None:
        raise HTTPException(404, NOT_FOUND)
    return appeal


def _by_phone(request: Request, session: Session, code: str, last_four: str) -> Appeal:
    """Code + the phone's last four digits. Every try counts against the caller's address; wrong
    ones also slow down that address on that code (api/ratelimit.py), never the real caller."""
    code = code.upper()
    ratelimit.check(request, "tracking_phone", f"ip:{ratelimit.client_ip(request)}")
    ratelimit.check_phone_guess(request, code)
    appeal = session.exec(select(Appeal).where(col(Appeal.code) == code)).first()
    if appeal is None or not phone_matches(appeal.requester_phone, last_four):
        ratelimit.phone_guess_wrong(request, code)
        raise HTTPException(404, "没有这个编号和手机尾号的诉求 / no appeal with this code and phone number")
    return appeal


class Information(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)


@router.post("/appeals/{code}/information", response_model=schemas.AppealOut)
def give_information(code: Code, body: Information, request: Request, session: SessionDep, settings: SettingsDep,
                     redis: RedisDep, token: TokenQuery = None,
                     x_access_token: TokenHeader = None) -> schemas.AppealOut:
    """The requester answers a department's request for information (the paused clock resumes), or
    adds to what they said while the appeal is being handled."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    action = Action.info_received if appeal.status == AppealStatus.waiting_requester else Action.add_information
    _as_requester(session, settings, redis, appeal, action, ActionInput(version=appeal.version, text=body.text))
    return track_appeal(code, request, session, settings, token, x_access_token)


class Withdrawal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=1000)


@router.post("/appeals/{code}/withdraw", response_model=schemas.AppealOut)
def withdraw(code: Code, request: Request, session: SessionDep, settings: SettingsDep, redis: RedisDep,
             body: Withdrawal | None = None, token: TokenQuery = None,
             x_access_token: TokenHeader = None) -> schemas.AppealOut:
    """The requester no longer needs an answer: the appeal closes and its department is told."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    _as_requester(session, settings, redis, appeal, Action.withdraw,
                  ActionInput(version=appeal.version, reason=body.reason if body else None))
    return track_appeal(code, request, session, settings, token, x_access_token)


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    solved: bool
    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]
    comment: str | None = Field(default=None, max_length=2000)


SATISFACTION_WORDS = {"satisfied": "满意 / satisfied", "basically_satisfied": "基本满意 / basically satisfied",
                      "unsatisfied": "不满意 / unsatisfied"}


@router.get("/appeals/{code}/rating", response_model=schemas.RatingForm)
def rating_form(code: Code, request: Request, session: SessionDep, settings: SettingsDep,
                token: TokenQuery = None, x_access_token: TokenHeader = None) -> schemas.RatingForm:
    """What the rating link in the reply message opens: the reply, the question, how to answer."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    reply = next((e.detail.get("result") for e in reversed(history(session, appeal.id))
                  if e.kind in ("reply", "answer")), None)
    return schemas.RatingForm(
        code=appeal.code, status=appeal.status, can_rate=appeal.status == AppealStatus.replied, reply=reply,
        question="问题是否解决？您是否满意？ / Was it solved, and are you satisfied?",
        satisfaction=SATISFACTION_WORDS,
        post_to=str(request.url_for("rate_reply", code=appeal.code)) + f"?token={x_access_token or token}",
        example={"solved": True, "satisfaction": "satisfied", "comment": "谢谢 / thank you"})


@router.post("/appeals/{code}/rating", response_model=schemas.AppealOut, name="rate_reply")
def rate_reply(code: Code, body: Rating, request: Request, session: SessionDep, settings: SettingsDep,
               redis: RedisDep, token: TokenQuery = None, x_access_token: TokenHeader = None) -> schemas.AppealOut:
    """The requester rates the reply (回访), once: satisfied or basically satisfied closes the appeal;
    unsatisfied reopens it to the same department at raised priority (重办), and a second
    unsatisfied rating goes to a supervisor."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    action = Action.reopen if body.satisfaction == "unsatisfied" else Action.close
    _as_requester(session, settings, redis, appeal, action, ActionInput(
        version=appeal.version, solved=body.solved, satisfaction=body.satisfaction, text=body.comment))
    return track_appeal(code, request, session, settings, token, x_access_token)


def _as_requester(session: Session, settings: Settings, redis, appeal: Appeal, action: Action,
                  given: ActionInput) -> None:
    try:
        calendar = load_calendar(session, hours=settings.working_hours, zone=settings.timezone)
        act(session, REQUESTER, appeal, action, given, now=utcnow(), calendar=calendar)
        session.commit()
    except Exception:
        session.rollback()
        raise
    wake_quietly(redis, DELIVERY)  # lost, the reconciler finds the messages in the outbox


@router.get("/appeals/{code}/qr.{kind}", responses={200: {"content": {"image/png": {}, "image/svg+xml": {}}}})
def qr(code: Code, kind: Literal["png", "svg"], request: Request, session: SessionDep, settings: SettingsDep,
       token: TokenQuery = None, x_access_token: TokenHeader = None) -> Response:
    """The appeal's link as a QR code: scanned, it opens the appeal (the code holds the token)."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    link = _link(request, appeal.code, x_access_token or token or "")
    media = "image/png" if kind == "png" else "image/svg+xml"
    return Response(qr_code(link, kind), media_type=media, headers={"Cache-Control": "private, max-age=3600"})


def _link(request: Request, code: str, token: str) -> str:
    return f"{request.url_for('track_appeal', code=code)}?token={token}"


@router.get("/appeals/{code}", response_model=schemas.AppealOut, name="track_appeal")
def track_appeal(code: Code, request: Request, session: SessionDep, settings: SettingsDep,
                 token: TokenQuery = None, x_access_token: TokenHeader = None, phone_last4: PhoneQuery = None,
                 lang: LanguageQuery = None) -> schemas.AppealOut:
    """The appeal and its whole life cycle, for the requester holding its link (or its code and the
    phone's last four digits: then the requester's own details are masked, since a guess may be right)."""
    by_phone = not (x_access_token or token) and phone_last4 is not None
    if by_phone and phone_last4 is not None:
        appeal = _by_phone(request, session, code, phone_last4)
    else:
        appeal = _own_appeal(session, settings, code, x_access_token or token)
    assisting = session.exec(
        select(Department).join(AppealAssist, col(AppealAssist.department_code) == col(Department.code))
        .where(col(AppealAssist.appeal_id) == appeal.id)
    ).all()
    departments = {d.code: d for d in session.exec(select(Department))}
    primary = departments.get(appeal.department_code or "")
    events = history(session, appeal.id)
    view = tracking_view(appeal, events, {c: {"zh": d.name_zh, "en": d.name_en} for c, d in departments.items()},
                         language=lang, zone=settings.timezone)
    if not by_phone:
        secret = access_token(settings.signing_key(), appeal.code)
        base = str(request.url_for("track_appeal", code=appeal.code))
        view["links"] = {"self": f"{base}?token={secret}", "qr_png": f"{base}/qr.png?token={secret}",
                         "qr_svg": f"{base}/qr.svg?token={secret}", "rating": f"{base}/rating?token={secret}"}
    requester = schemas.Requester(name=appeal.requester_name, phone=appeal.requester_phone,
                                  email=appeal.requester_email)
    if by_phone:
        # Masked values are not valid input; built as they are (an instance is not validated again).
        requester = schemas.Requester.model_construct(name=mask_name(appeal.requester_name),
                                                      phone=mask_phone(appeal.requester_phone),
                                                      email=mask_email(appeal.requester_email))
    return schemas.AppealOut(
        code=appeal.code, channel=appeal.channel, type=appeal.appeal_type, priority=appeal.priority,
        category=appeal.category_code, title=appeal.title, text=appeal.text,
        location=schemas.Location(district=appeal.district, street=appeal.street, address=appeal.address),
        requester=requester, status=appeal.status, version=appeal.version,
        department=schemas.Department.model_validate(primary, from_attributes=True) if primary else None,
        assisting=[schemas.Department.model_validate(d, from_attributes=True) for d in assisting],
        deadlines=schemas.Deadlines(accept_due_at=appeal.accept_due_at, contact_due_at=appeal.contact_due_at,
                                    resolve_due_at=appeal.resolve_due_at),
        received_at=appeal.received_at, language=appeal.language, anonymous=appeal.anonymous,
        # Only what is meant for the requester: no notes, no assisting departments' remarks, no staff
        # names or reasons meant for staff (models.tracking.PUBLIC_DETAIL).
        history=[schemas.Event(**vars(e)) for e in public_timeline(events)],
        view=view,
    )
