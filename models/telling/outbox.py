"""The notification outbox: rows written in the same transaction as the change they announce."""

import random
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import JSON, Column, Index, Text, bindparam, func, insert, select, update
from sqlmodel import Field, Session, SQLModel, col

from appealflow.models.appeals.enums import NotificationStatus
from appealflow.models.storage.columns import UTCDateTime, rows_changed, stored_id, utcnow
from appealflow.models.telling.audience import Message


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
    # The worker that marked it sent: a mark tried again after a lost commit answer knows its own rows.
    sent_by: str | None = Field(default=None, max_length=100)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class DeliveryAttempt(SQLModel, table=True):
    """One try at sending one message: when, through which channel, and what came of it."""

    __tablename__ = "delivery_attempt"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    channel: str = Field(max_length=20)
    result: str = Field(max_length=20)  # sent, failed, dead (the last attempt failed), undeliverable
    error: str | None = Field(default=None, max_length=1000)


BOTS = ("wecombot", "wxteams", "dingtalk", "feishu", "lark")
WEBHOOKS = ("json", "jsons", "xml", "xmls", "form", "forms")


def channel_of(target: str | None) -> str:
    """The channel a target goes through: email, sms, bot (group chat robots), webhook, or the
    Apprise scheme itself for anything else."""
    scheme = (target or "").split(":", 1)[0].lower()
    if scheme in ("mailto", "mailtos"):
        return "email"
    if scheme == "sms":
        return "sms"
    if scheme in BOTS:
        return "bot"
    if scheme in WEBHOOKS:
        return "webhook"
    return scheme[:20] or "none"


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
    # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT ... SKIP LOCKED): PostgreSQL may
    # run such a subquery more than once in one UPDATE (a rescan), each time skipping other rows,
    # and so claim many times `limit` (seen: 2,756 rows for a batch of 20 under three workers).
    due = session.execute(
        select(col(Notification.id))
        .where(col(Notification.status) == NotificationStatus.pending, col(Notification.next_attempt_at) <= now)
        .order_by(col(Notification.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if not due:
        return []
    session.execute(update(Notification).where(col(Notification.id).in_(due))
                    .values(status=NotificationStatus.sending, claimed_until=now + lease, claimed_by=worker))
    return list(session.execute(
        select(Notification).where(col(Notification.id).in_(due)).order_by(col(Notification.id))).scalars())


def _ours(notification_id: int, worker: str):
    return (col(Notification.id) == notification_id, col(Notification.status) == NotificationStatus.sending,
            col(Notification.claimed_by) == worker)


def _lock_in_order(session: Session, *conditions) -> list:
    """Lock the matching rows in id order, the one order every multi-row lock here takes, so two
    transactions that want some of the same rows queue rather than deadlock (PostgreSQL; SQLite has
    one writer at a time anyway). The (id, status, claimed_by, sent_by, target) of each."""
    return list(session.execute(
        select(col(Notification.id), col(Notification.status), col(Notification.claimed_by),
               col(Notification.sent_by), col(Notification.target))
        .where(*conditions).order_by(col(Notification.id)).with_for_update()
    ).all())


def renew_claims(session: Session, notification_ids: Collection[int], *, worker: str, until: datetime) -> set[int]:
    """Extend `worker`'s claims on these rows to `until`: the ids still claimed by `worker`; any other
    was taken over after its claim lapsed, and this worker must not send it."""
    if not notification_ids:
        return set()
    ours = [row.id for row in _lock_in_order(
        session, col(Notification.id).in_(list(notification_ids)),
        col(Notification.status) == NotificationStatus.sending, col(Notification.claimed_by) == worker)]
    if ours:
        session.execute(update(Notification).where(col(Notification.id).in_(ours)).values(claimed_until=until))
    return set(ours)


@dataclass
class Marked:
    """What `mark_sent_many` found: rows marked sent now, rows this worker had marked already (an
    earlier try whose commit landed though its answer was lost), and rows another worker had taken
    over after this worker's claim lapsed: those messages went, or go, out twice."""

    now: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    repeated: list[int] = field(default_factory=list)


def mark_sent_many(session: Session, sent: Iterable[tuple[int, str | None, str | None]], *, worker: str,
                   now: datetime) -> Marked:
    """Record messages `worker` has sent (id, subject, body), in the caller's transaction.

    A send cannot be taken back, so it is recorded even where the claim did not hold: a row still
    ours, or given back after its claim lapsed and not claimed again, is marked sent (nobody sends it
    again); a row another worker has claimed or sent since stays that worker's, and this send is
    recorded as a second `sent` attempt, so a repeated message is visible and counted. Trying again
    after a failed commit is safe: rows this worker already marked are skipped."""
    words = {notification_id: (subject, body) for notification_id, subject, body in sent}
    marked = Marked()
    if not words:
        return marked
    attempts = []
    for row in _lock_in_order(session, col(Notification.id).in_(list(words))):
        if row.status == NotificationStatus.sent and row.sent_by == worker:
            marked.already.append(row.id)
            continue
        free = row.status == NotificationStatus.pending or (
            row.status == NotificationStatus.sending and row.claimed_by == worker)
        (marked.now if free else marked.repeated).append(row.id)
        attempts.append(dict(notification_id=row.id, at=now, channel=channel_of(row.target), result="sent",
                             error=None if free else "sent again: the claim had lapsed and was taken over"))
    if marked.now:
        table = SQLModel.metadata.tables["notification"]  # the Core table: an executemany UPDATE
        session.connection().execute(
            update(table).where(table.c.id == bindparam("b_id"))
            .values(status=NotificationStatus.sent, sent_at=now, sent_by=worker, claimed_until=None,
                    claimed_by=None, attempts=table.c.attempts + 1, subject=bindparam("b_subject"),
                    body=bindparam("b_body")),
            [dict(b_id=i, b_subject=words[i][0], b_body=words[i][1]) for i in marked.now],
        )
    if attempts:
        session.execute(insert(DeliveryAttempt), attempts)
    return marked


def repeated_sends(session: Session) -> int:
    """Messages with more than one `sent` attempt: what went out twice (a worker killed between a
    send and its mark, or a claim that lapsed mid-send)."""
    twice = (select(col(DeliveryAttempt.notification_id)).where(col(DeliveryAttempt.result) == "sent")
             .group_by(col(DeliveryAttempt.notification_id)).having(func.count() > 1))
    return session.execute(select(func.count()).select_from(twice.subquery())).scalar_one()


def _attempted(session: Session, notification_id: int, now: datetime, result: str, error: str | None) -> None:
    target = session.execute(select(col(Notification.target)).where(col(Notification.id) == notification_id)).scalar()
    session.execute(insert(DeliveryAttempt).values(notification_id=notification_id, at=now,
                                                   channel=channel_of(target), result=result,
                                                   error=error[:1000] if error else None))


def backoff(attempts: int, base_seconds: float) -> float:
    """Exponential, with jitter: messages that failed together (a gateway down) do not all come
    back at the same instant when it returns. Between half and all of base * 2^(attempts-1)."""
    return base_seconds * 2 ** (attempts - 1) * random.uniform(0.5, 1.0)


def defer_many(session: Session, notification_ids: Collection[int], *, worker: str, until: datetime) -> int:
    """`defer` for many rows in one statement."""
    if not notification_ids:
        return 0
    result = session.execute(update(Notification).where(
        col(Notification.id).in_(list(notification_ids)), col(Notification.status) == NotificationStatus.sending,
        col(Notification.claimed_by) == worker).values(
        status=NotificationStatus.pending, claimed_until=None, claimed_by=None, next_attempt_at=until))
    return rows_changed(result) or 0


def mark_failed(
    session: Session, notification: Notification, error: str, *, worker: str, now: datetime,
    backoff_seconds: float, max_attempts: int, retryable: bool = True,
) -> str:
    """Schedule another attempt with exponential backoff, or give up after `max_attempts`; an error
    no retry can mend (no channel configured for the target) gives up at once."""
    attempts = notification.attempts + 1
    if not retryable:
        status = NotificationStatus.undeliverable
    elif attempts >= max_attempts:
        status = NotificationStatus.failed
    else:
        status = NotificationStatus.pending
    done = session.execute(
        update(Notification)
        .where(*_ours(stored_id(notification), worker))
        .values(
            status=status,
            attempts=attempts,
            claimed_until=None,
            claimed_by=None,
            last_error=error[:1000],
            next_attempt_at=now + timedelta(seconds=backoff(attempts, backoff_seconds)),
        )
    )
    if rows_changed(done) == 1:
        result = {NotificationStatus.failed: "dead", NotificationStatus.undeliverable: "undeliverable"}
        _attempted(session, stored_id(notification), now, result.get(status, "failed"), error)
    return status


def release_abandoned(session: Session, *, now: datetime, grace: timedelta = timedelta(0)) -> int:
    """Give back claims whose worker died; they are sent again (at-least-once at the crash point).
    Only claims lapsed for longer than `grace`: a worker that renewed its claim just before a send
    and was then held up (a busy machine can stop a thread for seconds) still finishes that send
    before anyone else may take the row, so a slow send is not a second send."""
    # Rows locked by a worker marking or renewing them right now are skipped: that worker is alive.
    lapsed = session.execute(
        select(col(Notification.id))
        .where(col(Notification.status) == NotificationStatus.sending,
               col(Notification.claimed_until) < now - grace)
        .order_by(col(Notification.id))
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if not lapsed:
        return 0
    result = session.execute(
        update(Notification).where(col(Notification.id).in_(lapsed))
        .values(status=NotificationStatus.pending, claimed_until=None, claimed_by=None)
    )
    return rows_changed(result) or 0


def next_due_at(session: Session) -> datetime | None:
    return session.execute(
        select(col(Notification.next_attempt_at))
        .where(col(Notification.status) == NotificationStatus.pending)
        .order_by(col(Notification.next_attempt_at))
        .limit(1)
    ).scalar_one_or_none()


UNDELIVERED = (NotificationStatus.failed, NotificationStatus.undeliverable)


def undelivered(session: Session, *, limit: int = 500) -> list[dict]:
    """The dead letters: messages given up on after their last attempt, or with nowhere to go, newest
    first, for supervisors. The recipient is a role or department and the target's channel only:
    a supervisor reads why a message did not arrive, not the citizen's address."""
    from appealflow.models.appeals.appeal import Appeal

    rows = session.execute(
        select(Notification, col(Appeal.code)).join(Appeal, col(Appeal.id) == col(Notification.appeal_id))
        .where(col(Notification.status).in_(UNDELIVERED)).order_by(col(Notification.id).desc()).limit(limit)).all()
    return [dict(id=n.id, appeal=code, event=n.event, recipient=n.recipient, channel=channel_of(n.target),
                 status=n.status, attempts=n.attempts, last_error=n.last_error,
                 last_attempt_at=_last_attempt(session, n.id),
                 created_at=n.created_at.isoformat())
            for n, code in rows]


def _last_attempt(session: Session, notification_id: int) -> str | None:
    at = session.execute(select(func.max(col(DeliveryAttempt.at)))
                         .where(col(DeliveryAttempt.notification_id) == notification_id)).scalar()
    return at.isoformat() if at else None


def attempts_of(session: Session, notification_id: int) -> list[DeliveryAttempt]:
    return list(session.execute(select(DeliveryAttempt).where(col(DeliveryAttempt.notification_id) == notification_id)
                                .order_by(col(DeliveryAttempt.id))).scalars())


def retry(session: Session, notification_id: int, *, now: datetime) -> bool:
    """Send a dead letter again from the start (a supervisor fixed the gateway or the address);
    false if it is not one. Its earlier attempts stay recorded."""
    result = session.execute(update(Notification).where(
        col(Notification.id) == notification_id, col(Notification.status).in_(UNDELIVERED),
        col(Notification.target).is_not(None))
        .values(status=NotificationStatus.pending, attempts=0, next_attempt_at=now, last_error=None))
    return rows_changed(result) == 1
