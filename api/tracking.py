"""Tracking: the requester follows their appeal with its code and secret token."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, select

from appealflow.api import ratelimit, schemas
from appealflow.api.deps import SessionDep, SettingsDep
from appealflow.models.appeal import Appeal, AppealAssist
from appealflow.models.columns import utcnow
from appealflow.models.department import Department
from appealflow.models.enums import Role
from appealflow.models.intake import history
from appealflow.models.lifecycle import Action
from appealflow.models.people import Staff
from appealflow.models.tracking import public_timeline, token_matches
from appealflow.models.workbench import ActionInput, act
from appealflow.settings import Settings

# Every look-up tries a token: limited per address, so codes and tokens cannot be guessed at speed.
router = APIRouter(tags=["tracking"], dependencies=[Depends(ratelimit.limit("tracking"))])


REQUESTER = Staff(id=0, username="requester", role=Role.requester, department_code=None)
# Tokens are URL-safe base64; anything else is refused by name before it reaches a comparison.
TOKEN_PATTERN = r"^[A-Za-z0-9_=-]{1,100}$"
TokenQuery = Annotated[str | None, Query(pattern=TOKEN_PATTERN)]
TokenHeader = Annotated[str | None, Header(pattern=TOKEN_PATTERN)]
Code = Annotated[str, Path(pattern=schemas.CODE_PATTERN)]


def _own_appeal(session: Session, settings: Settings, code: str, token: str | None) -> Appeal:
    """The appeal, for whoever holds its access token; 404 otherwise, so a wrong token cannot tell a
    real code from a made-up one."""
    if not token_matches(settings.signing_key(), code, token):
        raise HTTPException(404, "no appeal with this code and token")
    appeal = session.exec(select(Appeal).where(Appeal.code == code)).first()
    if appeal is None:
        raise HTTPException(404, "no appeal with this code and token")
    return appeal


class Information(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=5000)


@router.post("/appeals/{code}/information", response_model=schemas.AppealOut)
def give_information(code: Code, body: Information, session: SessionDep, settings: SettingsDep,
                     token: TokenQuery = None, x_access_token: TokenHeader = None) -> schemas.AppealOut:
    """The requester answers a department's request for information; the clock resumes."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    _as_requester(session, settings, appeal, Action.info_received, ActionInput(version=appeal.version, text=body.text))
    return track_appeal(code, session, settings, token, x_access_token)


class Rating(BaseModel):
    model_config = ConfigDict(extra="forbid")
    solved: bool
    satisfaction: Literal["satisfied", "basically_satisfied", "unsatisfied"]


@router.post("/appeals/{code}/rating", response_model=schemas.AppealOut)
def rate_reply(code: Code, body: Rating, session: SessionDep, settings: SettingsDep,
               token: TokenQuery = None, x_access_token: TokenHeader = None) -> schemas.AppealOut:
    """The requester rates the reply (回访): satisfied closes the appeal, unsatisfied reopens it."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    action = Action.reopen if body.satisfaction == "unsatisfied" else Action.close
    _as_requester(session, settings, appeal, action, ActionInput(version=appeal.version, solved=body.solved,
                                                                 satisfaction=body.satisfaction))
    return track_appeal(code, session, settings, token, x_access_token)


def _as_requester(session: Session, settings: Settings, appeal: Appeal, action: Action, given: ActionInput) -> None:
    try:
        act(session, REQUESTER, appeal, action, given, now=utcnow(), calendar=settings.calendar(session))
        session.commit()
    except Exception:
        session.rollback()
        raise


@router.get("/appeals/{code}", response_model=schemas.AppealOut, name="track_appeal")
def track_appeal(code: Code, session: SessionDep, settings: SettingsDep,
                 token: TokenQuery = None, x_access_token: TokenHeader = None) -> schemas.AppealOut:
    """The appeal and its whole history, for the requester holding its token."""
    appeal = _own_appeal(session, settings, code, x_access_token or token)
    assisting = session.exec(
        select(Department).join(AppealAssist, AppealAssist.department_code == Department.code)
        .where(AppealAssist.appeal_id == appeal.id)
    ).all()
    primary = session.get(Department, appeal.department_code) if appeal.department_code else None
    return schemas.AppealOut(
        code=appeal.code, channel=appeal.channel, type=appeal.appeal_type, priority=appeal.priority,
        category=appeal.category_code, title=appeal.title, text=appeal.text,
        location=schemas.Location(district=appeal.district, street=appeal.street, address=appeal.address),
        requester=schemas.Requester(name=appeal.requester_name, phone=appeal.requester_phone,
                                    email=appeal.requester_email),
        status=appeal.status, version=appeal.version,
        department=schemas.Department.model_validate(primary, from_attributes=True) if primary else None,
        assisting=[schemas.Department.model_validate(d, from_attributes=True) for d in assisting],
        deadlines=schemas.Deadlines(accept_due_at=appeal.accept_due_at, contact_due_at=appeal.contact_due_at,
                                    resolve_due_at=appeal.resolve_due_at),
        received_at=appeal.received_at,
        # Only what is meant for the requester: no notes, no assisting departments' remarks, no staff
        # names or reasons meant for staff (models.tracking.PUBLIC_DETAIL).
        history=[schemas.Event(**vars(e)) for e in public_timeline(history(session, appeal.id))],
    )
