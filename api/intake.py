"""Intake: citizens online and hotline operators submit appeals here."""

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from appealflow.api.deps import RedisDep, SessionDep, SettingsDep
from appealflow.api.schemas import AppealCreated, AppealIn
from appealflow.models.columns import utcnow
from appealflow.models.enums import Channel
from appealflow.models.intake import NewAppeal, receive_once
from appealflow.models.tracking import access_token
from appealflow.workers.queues import DISPATCH, wake

log = logging.getLogger(__name__)
router = APIRouter(tags=["intake"])


@router.post("/appeals", status_code=201, response_model=AppealCreated)
def submit_appeal(
    body: AppealIn, request: Request, response: Response, session: SessionDep, redis: RedisDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> AppealCreated:
    """Store the appeal and its `received` event, then wake dispatch. Retries with the same
    Idempotency-Key return the first answer."""
    new = NewAppeal(
        channel=body.channel, appeal_type=body.type, priority=body.priority, title=body.title,
        text=body.text, category_code=body.category, district=body.location.district,
        street=body.location.street, address=body.location.address, requester_name=body.requester.name,
        requester_phone=body.requester.phone, requester_email=body.requester.email,
        operator_id=body.operator_id,
    )
    actor = f"operator:{body.operator_id}" if body.channel == Channel.hotline else "requester"
    appeal, created = receive_once(session, new, now=utcnow(), actor=actor, idempotency_key=idempotency_key)
    if created:
        try:
            wake(redis, DISPATCH)
        except Exception:  # the appeal is safe in the database; the reconciler will wake dispatch
            log.exception("could not enqueue dispatch", extra={"appeal": appeal.code})
    else:
        response.status_code = 200
    return AppealCreated(
        code=appeal.code, access_token=access_token(settings.signing_key(), appeal.code),
        status=appeal.status, tracking_url=str(request.url_for("track_appeal", code=appeal.code)),
    )
