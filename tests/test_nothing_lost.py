"""A killed worker or a lost Redis job loses no appeal: the database decides what is left to do."""

import os
import signal
import time
from collections import Counter

import redis
from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import AppealStatus, NotificationStatus
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.conftest import on_both, on_sqlite
from tests.factories import received_appeals
from tests.test_dispatch_end_to_end import count_by_status, wait_for

LEASE = 4
RECONCILE = 0.5


def decisions_per_appeal(url: str) -> Counter:
    with session_scope(url) as session:
        return Counter(dict(session.execute(
            select(AppealEvent.appeal_id, func.count()).where(AppealEvent.kind.in_(["route", "triage"]))
            .group_by(AppealEvent.appeal_id)).all()))


def claimed_but_waiting(url: str) -> int:
    with session_scope(url) as session:
        return session.execute(select(func.count()).select_from(Appeal).where(
            Appeal.status == AppealStatus.received, Appeal.claimed_until > utcnow())).scalar_one()


@on_both
def test_a_worker_killed_mid_batch_loses_nothing(stack, smtp, monkeypatch):
    monkeypatch.setitem(stack.env, "APPEALFLOW_CLAIM_LEASE_SECONDS", str(LEASE))
    monkeypatch.setitem(stack.env, "APPEALFLOW_DISPATCH_BATCH_SIZE", "100")
    url = get_settings().sqlalchemy_url
    total = 300
    received_appeals(total)

    doomed = stack.start_worker()
    wait_for(lambda: claimed_but_waiting(url) > 0, timeout=60, every=0.005, what="a batch in flight")
    os.kill(doomed.pid, signal.SIGKILL)  # a SimpleWorker runs its job in-process: both die
    doomed.wait()
    killed_at = time.monotonic()
    stranded = claimed_but_waiting(url)
    assert stranded > 0, "the kill landed between batches; nothing was in flight"

    stack.start_worker()
    wait_for(lambda: count_by_status(url)[AppealStatus.received] == 0, timeout=120, what="recovery")
    recovered_in = time.monotonic() - killed_at
    # The stranded claims wait out their lease; the reconciler looks every RECONCILE seconds; the
    # rest is starting a worker and working off the backlog, which a loaded 2-core machine slows.
    assert recovered_in < LEASE + RECONCILE + 30, recovered_in

    per_appeal = decisions_per_appeal(url)
    assert len(per_appeal) == total and set(per_appeal.values()) == {1}

    def delivered():
        with session_scope(url) as session:
            pending = session.execute(select(func.count()).select_from(Notification).where(
                Notification.status != NotificationStatus.sent)).scalar_one()
            sent = session.execute(select(func.count()).select_from(Notification)).scalar_one()
        return sent if pending == 0 else None

    sent = wait_for(delivered, timeout=120, what="delivery")
    counts = smtp.counts()
    assert sum(counts.values()) == sent and set(counts.values()) == {1}
    print(f"killed with {stranded} appeals in flight; all {total} dispatched {recovered_in:.1f}s after the kill")


@on_sqlite
def test_appeals_whose_jobs_vanished_from_redis_are_still_dispatched(stack, env):
    url = get_settings().sqlalchemy_url
    received_appeals(50)
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()  # every queued job and wake-up flag is gone
    stack.start_worker()
    wait_for(lambda: count_by_status(url)[AppealStatus.received] == 0, timeout=60, what="reconciliation")
    assert set(decisions_per_appeal(url).values()) == {1}
