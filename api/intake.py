"""Intake: citizens online and hotline operators submit appeals here."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from appealflow.api import ratelimit
from appealflow.api.auth import OptionalStaff
from appealflow.api.deps import SettingsDep, UnitOfWorkDep
from appealflow.api.schemas import AppealCreated, AppealIn
from appealflow.models.appeals.enums import Channel, Role
from appealflow.models.appeals.intake import check_hold, receive_once
from appealflow.models.appeals.lifecycle import NotPermitted
from appealflow.models.appeals.tracking import access_token
from appealflow.models.storage.columns import utcnow
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
    bearer token or an operator's API key), recorded as that account whatever `operator_id` says.
    `answer_now`: the operator answers this consultation on the spot, so dispatch leaves it alone for
    `APPEALFLOW_ANSWER_HOLD_SECONDS` (or until the operator answers it or routes it after all)."""
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
    new = body.to_new(operator_id=operator_id)
    if body.answer_now:
        check_hold(new)
    hold = timedelta(seconds=settings.answer_hold_seconds) if body.answer_now else None
    actor = f"operator:{operator_id}" if operator_id else "requester"
    appeal, created = receive_once(unit.session, new, now=utcnow(), actor=actor, idempotency_key=idempotency_key,
                                   hold=hold)
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
