"""Receiving an appeal: stored with its `received` event in the caller's transaction."""

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from appealflow.models.appeal import Appeal, AppealEvent, IdempotencyKey
from appealflow.models.department import Category
from appealflow.models.enums import AppealStatus, Channel
from appealflow.models.tracking import new_tracking_code


@dataclass(frozen=True)
class NewAppeal:
    channel: str
    appeal_type: str
    priority: str
    title: str
    text: str
    category_code: str | None = None
    district: str | None = None
    street: str | None = None
    address: str | None = None
    requester_name: str | None = None
    requester_phone: str | None = None
    requester_email: str | None = None
    operator_id: str | None = None

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


class IntakeError(Exception):
    """Input the domain refuses; `field` names what to fix."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class IdempotencyConflict(Exception):
    """The idempotency key was used before for a different appeal."""


def check(session: Session, new: NewAppeal) -> None:
    if new.channel == Channel.hotline and not new.operator_id:
        raise IntakeError("operator_id", "a hotline appeal must name the operator who took the call")
    if new.category_code and session.get(Category, new.category_code) is None:
        raise IntakeError("category", f"unknown category {new.category_code!r}")
    if not (new.requester_phone or new.requester_email):
        raise IntakeError("requester", "give a phone number or an e-mail address so we can reply")


def find_by_key(session: Session, key: str, new: NewAppeal) -> Appeal | None:
    """The appeal an earlier request with this key created; a different body under it is refused."""
    row = session.get(IdempotencyKey, key)
    if row is None:
        return None
    if row.request_hash != new.fingerprint():
        raise IdempotencyConflict(f"Idempotency-Key {key!r} was already used for a different appeal")
    return session.get(Appeal, row.appeal_id)


def receive(session: Session, new: NewAppeal, *, now: datetime, actor: str,
            idempotency_key: str | None = None) -> Appeal:
    """Add the appeal, its `received` event and its idempotency key; the caller commits."""
    check(session, new)
    appeal = Appeal(**asdict(new), code=new_tracking_code(now), status=AppealStatus.received,
                    received_at=now, updated_at=now)
    session.add(appeal)
    session.flush()
    session.add(AppealEvent(appeal_id=appeal.id, kind="received", actor=actor, at=now,
                            to_status=AppealStatus.received, detail={"channel": new.channel}))
    if idempotency_key:
        session.add(IdempotencyKey(key=idempotency_key, request_hash=new.fingerprint(),
                                   appeal_id=appeal.id, created_at=now))
    return appeal


def receive_once(session: Session, new: NewAppeal, *, now: datetime, actor: str,
                 idempotency_key: str | None) -> tuple[Appeal, bool]:
    """Receive and commit, or return what an earlier request with the same key created.

    Two concurrent requests with one key race to insert the key; the loser's insert fails on the
    primary key, and it returns the winner's appeal.
    """
    if idempotency_key:
        existing = find_by_key(session, idempotency_key, new)
        if existing is not None:
            return existing, False
    try:
        appeal = receive(session, new, now=now, actor=actor, idempotency_key=idempotency_key)
        session.commit()
        return appeal, True
    except IntegrityError:
        session.rollback()
        if idempotency_key:
            existing = find_by_key(session, idempotency_key, new)
            if existing is not None:
                return existing, False
        raise


def history(session: Session, appeal_id: int) -> list[AppealEvent]:
    return list(session.exec(select(AppealEvent).where(AppealEvent.appeal_id == appeal_id)
                             .order_by(AppealEvent.id)))
