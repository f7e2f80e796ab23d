"""Intake: citizens online and hotline operators submit appeals here."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from appealflow.api import ratelimit
from appealflow.api.auth import OptionalStaff
from appealflow.api.deps import SettingsDep, UnitOfWorkDep
from appealflow.api.schemas import AppealCreated, AppealIn
from appealflow.models.columns import utcnow
from appealflow.models.enums import Channel, Role
from appealflow.models.intake import NewAppeal, language_of, receive_once
from appealflow.models.lifecycle import NotPermitted
from appealflow.models.tracking import access_token
from appealflow.workers.queues import DELIVERY, DISPATCH

router = APIRouter(tags=["intake"])


@router.post("/appeals", status_code=201, response_model=AppealCreated)
def submit_appeal(
    body: AppealIn, request: Request, unit: UnitOfWorkDep,
    settings: SettingsDep, staff: OptionalStaff,
    idempotency_key: Annotated[str | None, Header(max_length=255, pattern=r"^[\x21-\x7e]+$")] = None,
) -> Response:
    """Store the appeal and its `received` event, then wake dispatch. Retries with the same
    Idempotency-Key return the first answer. A hotline appeal is filed by a signed-in operator (a
    bearer token or an operator's API key), recorded as that account whatever `operator_id` says."""
    operator_id = None
    if body.channel == Channel.hotline:
        if staff is None:
            raise HTTPException(401, "热线诉求须由话务员登录后提交 / sign in as an operator to file a hotline appeal",
                                headers={"WWW-Authenticate": "Bearer"})
        if staff.role != Role.operator:
            raise NotPermitted(staff.role, "file a hotline appeal")
        operator_id = staff.username
    if staff is None:  # the public's intake is limited per address; staff file as their work needs
        ratelimit.check(request, "intake", ratelimit.client_ip(request))
    new = NewAppeal(
        channel=body.channel, appeal_type=body.type, priority=body.priority, title=body.title,
        text=body.text, category_code=body.category, district=body.location.district,
        street=body.location.street, address=body.location.address, requester_name=body.requester.name,
        requester_phone=body.requester.phone, requester_email=body.requester.email,
        operator_id=operator_id, language=language_of(body.title, body.text, body.language),
    )
    actor = f"operator:{operator_id}" if operator_id else "requester"
    appeal, created = receive_once(unit.session, new, now=utcnow(), actor=actor, idempotency_key=idempotency_key)
    if created:
        unit.wake(DISPATCH)
        unit.wake(DELIVERY)  # the requester's "received"
    unit.commit()
    token = access_token(settings.signing_key(), appeal.code)
    # The link the caller can follow as it stands: the appeal's page data, opened by its token.
    base = str(request.url_for("track_appeal", code=appeal.code))
    # Answered as built, every field a plain string already: FastAPI's validation and serialisation
    # of a returned model was 7% of the API's Python in a profile. The model still documents it.
    return JSONResponse(status_code=201 if created else 200, content={
        "code": appeal.code, "access_token": token, "status": str(appeal.status), "language": appeal.language,
        "tracking_url": f"{base}?token={token}", "qr_png_url": f"{base}/qr.png?token={token}",
        "qr_svg_url": f"{base}/qr.svg?token={token}"})
