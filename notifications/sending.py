"""Sending one claimed batch of outbox rows: a few at a time on threads, with the database work done
per batch rather than per message. Plain Python over models/outbox.py and delivery.py; no RQ here.

Per message, only the rendering and the send itself remain. The rest is shared by the batch:
- claims: renewed for every unsent row of the batch in one UPDATE, and only when they are about to
  run short (`ClaimKeeper`); a message is sent only while its claim outlasts a whole send (the
  notify timeout plus slack), so no other worker takes it over mid-send, and a row found no longer
  ours is never sent;
- marking: a row is marked sent only after its send returned, in one transaction for whatever was
  sent in the last `MARK_EVERY_SECONDS` (`mark_sent_many`); a worker killed in between sends those
  few again when their claims lapse (at-least-once for that short window, as before for one message);
- rate limits: counted a few messages at a time (`Allowance`), still before each is sent;
- failures keep their own transaction each (retry with backoff, attempts, dead letters).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from appealflow.models.columns import stored_id, utcnow
from appealflow.models.db import session_scope
from appealflow.models.outbox import (
    Notification,
    channel_of,
    defer_many,
    mark_failed,
    mark_sent_many,
    renew_claims,
)
from appealflow.notifications.delivery import Allowance, ChannelLimits, NoRoute, send
from appealflow.notifications.messages import Links, words_of
from appealflow.settings import Settings

log = logging.getLogger(__name__)

# How long a sent message may wait to be marked: the batch's marks go in one transaction this often.
MARK_EVERY_SECONDS = 0.2


class ClaimKeeper:
    """The claims of one batch, renewed together. `may_send` is asked just before each send: it renews
    every row of the batch not yet settled (sent rows not yet marked included) in one statement when
    the claims would lapse within `margin`, and answers whether the row is still ours."""

    def __init__(self, url: str, notification_ids: list[int], *, worker: str, lease: timedelta, margin: timedelta,
                 claimed_until: datetime):
        self._url = url
        self._worker = worker
        self._lease = lease
        self._margin = margin
        self._ours = set(notification_ids)
        self._settled: set[int] = set()
        self._until = claimed_until
        self._lock = threading.Lock()
        self.renewals = 0

    def may_send(self, notification_id: int) -> bool:
        with self._lock:
            now = utcnow()
            if now + self._margin >= self._until:
                until = now + self._lease
                with session_scope(self._url) as session:
                    self._ours &= renew_claims(session, self._ours - self._settled, worker=self._worker,
                                               until=until) | self._settled
                self._until = until
                self.renewals += 1
            return notification_id in self._ours

    def settled(self, notification_ids) -> None:
        """These rows are no longer ours to keep (marked sent, failed or deferred)."""
        with self._lock:
            self._settled.update(notification_ids)


@dataclass
class _Marks:
    """Messages sent and not yet marked, filled by the sending threads, emptied by the batch's thread."""

    sent: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    deferred: dict[int, float] = field(default_factory=dict)  # id -> seconds to wait
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[list[tuple[int, str | None, str | None]], dict[int, float]]:
        with self.lock:
            sent, deferred = self.sent, self.deferred
            self.sent, self.deferred = [], {}
        return sent, deferred


def send_batch(batch: list[Notification], *, url: str, worker: str, settings: Settings, limits: ChannelLimits,
               claimed_until: datetime, lease: timedelta) -> Counter:
    """Send a batch this worker has claimed; the outcome of each row (sent, failed, dead, deferred,
    taken_over)."""
    if not batch:
        return Counter()
    keeper = ClaimKeeper(url, [stored_id(n) for n in batch], worker=worker, lease=lease, claimed_until=claimed_until,
                         # a send may take a connect and a read timeout; then some slack
                         margin=timedelta(seconds=2 * settings.notify_timeout_seconds + 5))
    allowance = Allowance(limits, [n.target or "" for n in batch], chunk=settings.delivery_concurrency)
    marks = _Marks()
    outcomes: Counter = Counter()

    def one(notification: Notification) -> str:
        return _deliver_one(notification, url=url, worker=worker, settings=settings, allowance=allowance,
                            keeper=keeper, marks=marks)

    last_recorded = time.monotonic()
    try:
        # An SMTP or HTTP round trip is mostly waiting, so a few run side by side.
        pool = _senders(settings.delivery_concurrency)
        pending: set[Future] = {pool.submit(one, n) for n in batch}
        while pending:
            done, pending = wait(pending, timeout=MARK_EVERY_SECONDS, return_when=FIRST_COMPLETED)
            outcomes.update(f.result() for f in done)
            if time.monotonic() - last_recorded >= MARK_EVERY_SECONDS:
                _record(url, worker, marks, keeper)
                last_recorded = time.monotonic()
    finally:
        _record(url, worker, marks, keeper)  # whatever went out before an error is marked sent too
    return outcomes


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _senders(threads: int) -> ThreadPoolExecutor:
    """The process's sending threads, kept from batch to batch rather than started for each one (a
    batch every second or so at a steady load); a batch waits for its own messages, not the pool."""
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="send")
        return _pools[threads]


def _record(url: str, worker: str, marks: _Marks, keeper: ClaimKeeper) -> None:
    """Mark what was sent as sent, and put back what the rate limit held, in one transaction."""
    sent, deferred = marks.take()
    if not sent and not deferred:
        return
    now = utcnow()
    try:
        with session_scope(url) as session:
            mark_sent_many(session, sent, worker=worker, now=now)
            by_wait: dict[float, list[int]] = {}
            for notification_id, seconds in deferred.items():
                by_wait.setdefault(seconds, []).append(notification_id)
            for seconds, ids in by_wait.items():
                defer_many(session, ids, worker=worker, until=now + timedelta(seconds=seconds))
    except Exception:
        with marks.lock:  # kept for the next try; their claims are still renewed meanwhile
            marks.sent[:0] = sent
            marks.deferred.update(deferred)
        raise
    keeper.settled([i for i, _, _ in sent] + list(deferred))


def _deliver_one(notification: Notification, *, url: str, worker: str, settings: Settings, allowance: Allowance,
                 keeper: ClaimKeeper, marks: _Marks) -> str:
    target = notification.target or ""
    channel = channel_of(target)
    notification_id = stored_id(notification)
    wait_seconds = allowance.wait(target)
    if wait_seconds:  # the channel's rate is spent: back in the queue, no attempt used up
        with marks.lock:
            marks.deferred[notification_id] = round(wait_seconds, 2)
        return "deferred"
    if not keeper.may_send(notification_id):
        return "taken_over"  # our claim lapsed and another worker sends it
    try:
        code = notification.facts.get("code") if notification.facts else None
        links = Links.of(code, public_url=settings.public_url, signing_key=settings.signing_key()) if code else None
        # A QR code where the channel shows one: the requester's e-mail.
        message = words_of(notification, zone=settings.timezone, links=links,
                           qr=channel == "email" and notification.audience == "requester")
        send(target, message, settings)
    except Exception as error:  # NoRoute, or whatever the channel raised
        with session_scope(url) as session:
            status = mark_failed(session, notification, str(error), worker=worker, now=utcnow(),
                                 backoff_seconds=settings.delivery_backoff_seconds,
                                 max_attempts=settings.delivery_max_attempts,
                                 retryable=not isinstance(error, NoRoute))
        keeper.settled([notification_id])
        given_up = status != "pending"
        (log.error if given_up else log.warning)(
            "message %s (%s to %s) %s through %s, attempt %s: %s", notification.id, notification.event,
            notification.recipient, "dead-lettered" if given_up else "not delivered", channel,
            notification.attempts + 1, error,
            extra={"notification": notification.id, "channel": channel, "reason": str(error)})
        return "dead" if given_up else "failed"
    with marks.lock:
        marks.sent.append((notification_id, message.subject, message.text))
    return "sent"
