"""Delivery by batches: claims renewed and rows marked sent a batch at a time, rate limits counted a
few messages at a time. Real Redis, a real SMTP receiver, both databases."""

import threading
import time

from sqlalchemy import func, select

from appealflow.flows.dispatch import dispatch_appeals
from appealflow.models.appeals.enums import NotificationStatus
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import DeliveryAttempt, Notification
from appealflow.notifications.delivery import Allowance, ChannelLimits
from appealflow.settings import get_settings
from appealflow.workers.jobs import deliver_until_done
from tests.conftest import on_both
from tests.factories import received_appeals
from tests.test_dispatch_and_delivery import _claim_all


@on_both
def test_racing_delivery_passes_with_claims_renewed_per_batch_send_each_message_once(env, smtp, monkeypatch):
    # A lease shorter than a send may take: every send first renews the batch's claims in one statement.
    monkeypatch.setenv("APPEALFLOW_CLAIM_LEASE_SECONDS", "2")
    monkeypatch.setenv("APPEALFLOW_NOTIFY_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("APPEALFLOW_DELIVERY_BATCH_SIZE", "25")
    get_settings.cache_clear()
    url = get_settings().sqlalchemy_url
    received_appeals(60)
    summary = dispatch_appeals(_claim_all(url))
    assert summary.notifications > 60

    passes = [threading.Thread(target=deliver_until_done, kwargs=dict(worker=f"pump-{n}")) for n in range(3)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join(120)
    deliver_until_done(worker="pump-last")  # whatever a pass left (none expected: each drains until done)

    with session_scope(url) as session:
        rows = session.execute(select(Notification).where(Notification.target.is_not(None))).scalars().all()
        attempts = dict(session.execute(select(DeliveryAttempt.notification_id, func.count())
                                        .where(DeliveryAttempt.result == "sent")
                                        .group_by(DeliveryAttempt.notification_id)).all())
    emails = [r for r in rows if r.target.startswith("mailto:")]
    assert emails and all(r.status == NotificationStatus.sent and r.attempts == 1 and r.sent_at for r in emails)
    assert all(r.subject and r.body and r.claimed_by is None for r in emails), "kept with the words it went with"
    assert {attempts.get(r.id) for r in emails} == {1}, "one sent attempt recorded per message"
    received = smtp.counts()
    assert sum(received.values()) == len(emails)
    assert set(received.values()) == {1}, "no message was delivered twice"


@on_both
def test_rate_limit_counted_in_bulk_holds_across_threads_and_batches(env, monkeypatch):
    monkeypatch.setenv("APPEALFLOW_DELIVERY_RATE_LIMIT_EMAIL", "20/second")
    get_settings.cache_clear()
    target = "mailto:someone@example.test"
    # Each grant as the interval it surely happened in (from before the call to after it): a thread the
    # busy machine holds up between the two must not make a grant look later, or earlier, than it was.
    granted: list[tuple[float, float]] = []
    lock = threading.Lock()
    until = time.monotonic() + 2.5

    def pump() -> None:
        limits = ChannelLimits(get_settings())  # a process of its own would have its own; Redis is shared
        while time.monotonic() < until:
            allowance = Allowance(limits, [target] * 30, chunk=8)  # one batch
            for _ in range(30):
                asked = time.time()
                wait = allowance.wait(target)
                if wait:
                    time.sleep(min(wait, 0.05))
                    continue
                with lock:
                    granted.append((asked, time.time()))

    threads = [threading.Thread(target=pump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    granted.sort()
    # Grants that certainly fell within one second of each other (their whole intervals inside it).
    busiest = max(sum(1 for asked, got in granted[i:] if got - start < 1.0) for i, (start, _) in enumerate(granted))
    assert busiest <= 20, f"{busiest} messages counted within one second against 20/second"
    assert len(granted) >= 40, "the limit let messages through in every window"
