"""Job functions. Each drains what the database says is waiting, so running one twice is harmless."""

import logging
import os
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from rq import get_current_job

from appealflow.flows.dispatch import dispatch_appeals
from appealflow.models.columns import utcnow
from appealflow.models.db import session_scope
from appealflow.models.dispatch import claim_waiting
from appealflow.models.outbox import Notification, claim_due, mark_failed, mark_sent, release_abandoned, renew_claim
from appealflow.notifications.delivery import NoRoute, send
from appealflow.notifications.messages import words_of
from appealflow.settings import Settings, get_settings
from appealflow.workers.queues import DELIVERY, DISPATCH, wake, woken

log = logging.getLogger(__name__)


def dispatch_waiting() -> dict:
    """Claim a batch of received appeals (waiting briefly to fill it) and run one flow over it."""
    settings = get_settings()
    redis = get_current_job().connection
    woken(redis, DISPATCH)
    lease = timedelta(seconds=settings.claim_lease_seconds)
    size = settings.dispatch_batch_size
    with session_scope(settings.sqlalchemy_url) as session:
        ids = claim_waiting(session, limit=size, lease=lease, now=utcnow())
    if 0 < len(ids) < size and settings.dispatch_batch_wait_ms:
        time.sleep(settings.dispatch_batch_wait_ms / 1000)
        with session_scope(settings.sqlalchemy_url) as session:
            ids += claim_waiting(session, limit=size - len(ids), lease=lease, now=utcnow())
    if not ids:
        return {"claimed": 0}
    if len(ids) == size:
        wake(redis, DISPATCH)  # likely more waiting: let another worker start on it now
    summary = dispatch_appeals(ids)
    if summary.notifications:
        wake(redis, DELIVERY)
    log.info("dispatched batch", extra={"claimed": len(ids), "dispatched": summary.dispatched,
                                        "triaged": summary.triaged, "failed": len(summary.failed)})
    return {"claimed": len(ids), "dispatched": summary.dispatched, "triaged": summary.triaged,
            "unchanged": summary.unchanged, "failed": summary.failed}


def deliver_due() -> dict:
    """Send due outbox rows, several at once, each marked sent as soon as it is; failures back off."""
    settings = get_settings()
    redis = get_current_job().connection
    woken(redis, DELIVERY)
    lease = timedelta(seconds=settings.claim_lease_seconds)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with session_scope(settings.sqlalchemy_url) as session:
        release_abandoned(session, now=utcnow())
        batch = claim_due(session, limit=settings.delivery_batch_size, lease=lease, now=utcnow(), worker=worker)
    if len(batch) == settings.delivery_batch_size:
        wake(redis, DELIVERY)
    # An SMTP or HTTP round trip is mostly waiting, so a few run side by side.
    with ThreadPoolExecutor(settings.delivery_concurrency) as pool:
        outcomes = Counter(pool.map(lambda n: _deliver(n, worker=worker, lease=lease, settings=settings), batch))
    return dict(outcomes)


def _deliver(notification: Notification, *, worker: str, lease: timedelta, settings: Settings) -> str:
    url = settings.sqlalchemy_url
    with session_scope(url) as session:
        if not renew_claim(session, notification.id, worker=worker, until=utcnow() + lease):
            return "taken_over"  # our claim lapsed and another worker sends it
    try:
        subject, body = words_of(notification, zone=settings.timezone)
        send(notification.target or "", subject, body, settings)
    except Exception as error:  # NoRoute, or whatever the channel raised
        log.warning("delivery failed", extra={"notification": notification.id, "error": str(error)})
        with session_scope(url) as session:
            mark_failed(session, notification, str(error), worker=worker, now=utcnow(),
                        backoff_seconds=settings.delivery_backoff_seconds,
                        max_attempts=settings.delivery_max_attempts,
                        retryable=not isinstance(error, NoRoute))
        return "failed"
    with session_scope(url) as session:
        mark_sent(session, notification.id, worker=worker, now=utcnow(), subject=subject, body=body)
    return "sent"
