"""The notification outbox: rows written in the same transaction as the change they announce."""

from datetime import datetime, timedelta

from sqlalchemy import JSON, Column, Index, Text, insert, select, update
from sqlmodel import Field, Session, SQLModel

from appealflow.models.audience import Message
from appealflow.models.columns import UTCDateTime, utcnow
from appealflow.models.enums import NotificationStatus


class Notification(SQLModel, table=True):
    """One message to one target. The dedupe key makes writing it twice impossible."""

    __table_args__ = (Index("ix_notification_status_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    appeal_id: int = Field(foreign_key="appeal.id", index=True)
    dedupe_key: str = Field(max_length=300, unique=True)
    recipient: str = Field(max_length=80)
    target: str | None = Field(default=None, max_length=500)
    # What to say; the words are rendered at delivery, in `language`, and kept once sent.
    event: str = Field(max_length=40)
    audience: str = Field(max_length=20)
    facts: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    language: str = Field(default="zh", max_length=10)
    subject: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, sa_column=Column(Text))
    status: str = Field(max_length=20)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    claimed_by: str | None = Field(default=None, max_length=100)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def outbox_rows(messages: list[Message], *, now: datetime) -> list[dict]:
    """Rows for the messages: one per target, or one undeliverable row for a recipient with none."""
    rows = []
    for m in messages:
        base = dict(appeal_id=m.appeal_id, recipient=m.recipient, event=m.event.value, audience=m.audience.value,
                    facts=m.facts, language=m.language, attempts=0, next_attempt_at=now, created_at=now)
        if not m.targets:
            rows.append(dict(base, dedupe_key=f"{m.appeal_id}:{m.key}:{m.recipient}", target=None,
                             status=NotificationStatus.undeliverable, last_error="no target to deliver to"))
        rows += [dict(base, dedupe_key=f"{m.appeal_id}:{m.key}:{m.recipient}:{target}", target=target,
                      status=NotificationStatus.pending) for target in m.targets]
    return rows


def write(session: Session, messages: list[Message], *, now: datetime) -> int:
    """Add the messages to the outbox in the caller's transaction; how many rows that made."""
    rows = outbox_rows(messages, now=now)
    if rows:
        session.execute(insert(Notification), rows)
    return len(rows)


def claim_due(session: Session, *, limit: int, lease: timedelta, now: datetime, worker: str) -> list[Notification]:
    """Mark up to `limit` due notifications as being sent by `worker`, and return them."""
    due = (
        select(Notification.id)
        .where(Notification.status == NotificationStatus.pending, Notification.next_attempt_at <= now)
        .order_by(Notification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = session.execute(
        update(Notification)
        .where(Notification.id.in_(due.scalar_subquery()), Notification.status == NotificationStatus.pending)
        .values(status=NotificationStatus.sending, claimed_until=now + lease, claimed_by=worker)
        .returning(Notification.id)
    ).scalars().all()
    if not claimed:
        return []
    return list(session.execute(
        select(Notification).where(Notification.id.in_(claimed)).order_by(Notification.id)).scalars())


def _ours(notification_id: int, worker: str):
    return (Notification.id == notification_id, Notification.status == NotificationStatus.sending,
            Notification.claimed_by == worker)


def renew_claim(session: Session, notification_id: int, *, worker: str, until: datetime) -> bool:
    """Extend `worker`'s claim just before sending; false if the claim lapsed and was taken over,
    in which case the other worker sends it and this one must not."""
    result = session.execute(update(Notification).where(*_ours(notification_id, worker)).values(claimed_until=until))
    return result.rowcount == 1


def mark_sent(session: Session, notification_id: int, *, worker: str, now: datetime,
              subject: str | None = None, body: str | None = None) -> None:
    """Record the message as sent, with the words it went out with."""
    session.execute(
        update(Notification)
        .where(*_ours(notification_id, worker))
        .values(status=NotificationStatus.sent, sent_at=now, claimed_until=None, claimed_by=None,
                attempts=Notification.attempts + 1, subject=subject, body=body)
    )


def mark_failed(
    session: Session, notification: Notification, error: str, *, worker: str, now: datetime,
    backoff_seconds: float, max_attempts: int, retryable: bool = True,
) -> None:
    """Schedule another attempt with exponential backoff, or give up after `max_attempts`; an error
    no retry can mend (no channel configured for the target) gives up at once."""
    attempts = notification.attempts + 1
    if not retryable:
        status = NotificationStatus.undeliverable
    elif attempts >= max_attempts:
        status = NotificationStatus.failed
    else:
        status = NotificationStatus.pending
    session.execute(
        update(Notification)
        .where(*_ours(notification.id, worker))
        .values(
            status=status,
            attempts=attempts,
            claimed_until=None,
            claimed_by=None,
            last_error=error[:1000],
            next_attempt_at=now + timedelta(seconds=backoff_seconds * 2 ** (attempts - 1)),
        )
    )


def release_abandoned(session: Session, *, now: datetime) -> int:
    """Give back claims whose worker died; they are sent again (at-least-once at the crash point)."""
    result = session.execute(
        update(Notification)
        .where(Notification.status == NotificationStatus.sending, Notification.claimed_until < now)
        .values(status=NotificationStatus.pending, claimed_until=None, claimed_by=None)
    )
    return result.rowcount or 0


def next_due_at(session: Session) -> datetime | None:
    return session.execute(
        select(Notification.next_attempt_at)
        .where(Notification.status == NotificationStatus.pending)
        .order_by(Notification.next_attempt_at)
        .limit(1)
    ).scalar_one_or_none()
