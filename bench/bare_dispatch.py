"""The bare SQL of dispatch's own writes, as the baseline `bench/dispatch.py` reports its ratio to.

For every batch of 500 received appeals, in one transaction and nothing else: the claim (an UPDATE
of the oldest unclaimed ids, with FOR UPDATE SKIP LOCKED on PostgreSQL), the status update that
routes each one (department, category, two deadlines, version), its route event and two outbox rows
(the requester's notice and the department's). No routing decision, no Prefect, no RQ: what is left
when everything but the writes is taken away. The rows are deleted afterwards.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, select, update

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import AppealStatus, NotificationStatus
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification

BATCH = 500


def _claim(session, now, postgres: bool) -> list[int]:
    oldest = (select(Appeal.id).where(Appeal.status == AppealStatus.received, Appeal.claimed_until.is_(None))
              .order_by(Appeal.id).limit(BATCH))
    if postgres:
        oldest = oldest.with_for_update(skip_locked=True)
    return list(session.execute(update(Appeal).where(Appeal.id.in_(oldest.scalar_subquery()))
                                .values(claimed_until=now + timedelta(seconds=30))
                                .returning(Appeal.id)).scalars())


def run(url: str, postgres: bool) -> tuple[int, float]:
    """Route every received appeal with bare SQL; (appeals, seconds)."""
    started = time.perf_counter()
    done: list[int] = []
    while True:
        now = utcnow()
        with session_scope(url) as session:
            ids = _claim(session, now, postgres)
            if not ids:
                break
            session.connection().execute(
                update(Appeal.__table__).where(Appeal.__table__.c.id == bindparam("b_id")).values(
                    status=AppealStatus.dispatched, department_code="housing", category_code="construction_noise",
                    dispatched_at=now, accept_due_at=now + timedelta(hours=2), resolve_due_at=now + timedelta(days=5),
                    claimed_until=None, version=Appeal.__table__.c.version + 1, updated_at=now),
                [{"b_id": i} for i in ids])
            session.execute(insert(AppealEvent), [
                dict(appeal_id=i, kind="route", actor="system:bare", at=now, from_status=AppealStatus.received,
                     to_status=AppealStatus.dispatched, detail={"department": "housing"}) for i in ids])
            session.execute(insert(Notification), [
                dict(appeal_id=i, dedupe_key=f"bare:{i}:{who}", recipient=who, target=f"mailto:{who}-{i}@bench.test",
                     event="dispatched", audience=who, facts={"code": str(i)}, status=NotificationStatus.sent,
                     next_attempt_at=now, created_at=now) for i in ids for who in ("requester", "department")])
        done += ids
    seconds = time.perf_counter() - started
    with session_scope(url) as session:  # gone again, so the measured phases never see them
        for table, column in ((Notification, Notification.appeal_id), (AppealEvent, AppealEvent.appeal_id)):
            session.execute(delete(table).where(column.in_(done)))
        session.execute(delete(Appeal).where(Appeal.id.in_(done)))
    return len(done), seconds
