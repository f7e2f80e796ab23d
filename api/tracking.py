"""Tracking: the requester follows their appeal with its code and secret token."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query
from sqlmodel import select

from api import schemas
from api.deps import SessionDep, SettingsDep
from models.appeal import Appeal, AppealAssist
from models.department import Department
from models.intake import history
from models.tracking import token_matches

router = APIRouter(tags=["tracking"])


@router.get("/appeals/{code}", response_model=schemas.AppealOut, name="track_appeal")
def track_appeal(
    code: str, session: SessionDep, settings: SettingsDep,
    token: Annotated[str | None, Query(max_length=100)] = None,
    x_access_token: Annotated[str | None, Header(max_length=100)] = None,
) -> schemas.AppealOut:
    """The appeal and its history, for whoever holds its access token; 404 otherwise, so a wrong
    token cannot tell a real code from a made-up one."""
    if not token_matches(settings.signing_key(), code, x_access_token or token):
        raise HTTPException(404, "no appeal with this code and token")
    appeal = session.exec(select(Appeal).where(Appeal.code == code)).first()
    if appeal is None:
        raise HTTPException(404, "no appeal with this code and token")
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
        status=appeal.status,
        department=schemas.Department.model_validate(primary, from_attributes=True) if primary else None,
        assisting=[schemas.Department.model_validate(d, from_attributes=True) for d in assisting],
        deadlines=schemas.Deadlines(accept_due_at=appeal.accept_due_at, contact_due_at=appeal.contact_due_at,
                                    resolve_due_at=appeal.resolve_due_at),
        received_at=appeal.received_at,
        # Staff are named by role only: the requester learns what happened, not who did it.
        history=[schemas.Event(kind=e.kind, at=e.at, actor=e.actor.split(":")[0], from_status=e.from_status,
                               to_status=e.to_status, detail=e.detail)
                 for e in history(session, appeal.id)],
    )
