"""Sending one claimed batch of outbox rows: a few at a time on threads, with the database work done
per batch rather than per message. Plain Python over models/telling/outbox.py and delivery.py; no RQ here.

Per message, only the rendering and the send itself remain. The rest is shared by the batch:
- claims: renewed for every unsent row of the batch in one UPDATE, and only when they are about to
  run short (`ClaimKeeper`); a message is sent only while its claim outlasts a whole send (the
  notify timeout plus slack), so no other worker takes it over mid-send, and a row found no longer
  ours is never sent;
- marking: a row is marked sent only after its send returned, in one transaction for whatever was
  sent in the last `MARK_EVERY_SECONDS` (`mark_sent_many`); a worker killed in between sends those
  few again when their claims lapse (at-least-once for that short window, by necessity);
- renewals and marks of a batch take turns (one lock), and every statement locks rows in id order,
  so they never deadlock each other;
- the database going away stops sending, not the batch: marks (and failures, and deferrals) are
  kept and written again every second or so until they land, and no new message goes out while
  they cannot be written, so an outage adds at most the sends already under way to the crash window;
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
from functools import lru_cache

from sqlalchemy import text

from appealflow.models.storage.columns import stored_id, utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import (
    Notification,
    channel_of,
    defer_many,
    mark_failed,
    mark_sent_many,
    renew_claims,
)
from appealflow.models.telling.short_links import key_for
from appealflow.notifications.delivery import Allowance, ChannelLimits, NoRoute, send
from appealflow.notifications.messages import Links, Rendered, render_sms, templates, words_of
from appealflow.settings import Settings

log = logging.getLogger(__name__)

# How long a sent message may wait to be marked: the batch's marks go in one transaction this often.
MARK_EVERY_SECONDS = 0.2
# While the database takes no writes: how often to try again, and for how long at most before the
# unwritten marks are given up (their claims lapse and those messages go out once more).
RETRY_WRITES_SECONDS = (0.2, 1.0)
GIVE_UP_WRITING_SECONDS = 600.0


class Writes:
    """Whether the database takes this batch's writes. A failed mark, renewal or failure record
    closes it and sending pauses; the batch's thread opens it again once a write lands."""

    def __init__(self):
        self._open = threading.Event()
        self._open.set()
        self.failing_since: float | None = None

    @property
    def open(self) -> bool:
        return self._open.is_set()

    def failed(self, what: str, error: Exception) -> None:
        if self._open.is_set():
            self.failing_since = time.monotonic()
            log.warning("delivery paused: could not write %s (%s: %s); sending stops until it can",
                        what, type(error).__name__, str(error).splitlines()[0][:200] if str(error) else "")
        self._open.clear()

    def landed(self) -> None:
        if not self._open.is_set() and self.failing_since is not None:
            log.warning("delivery resumed: the database took writes again after %.1fs",
                        time.monotonic() - self.failing_since)
        self.failing_since = None
        self._open.set()

    def wait(self, seconds: float) -> bool:
        return self._open.wait(seconds)


class ClaimKeeper:
    """The claims of one batch, renewed together. `may_send` is asked just before each send: it renews
    every row of the batch not yet settled (sent rows not yet marked included) in one statement when
    the claims would lapse within `margin`, and answers whether the row is still ours. `lock` is held
    by every write of the batch, so its renewals and marks never wait on each other's row locks."""

    def __init__(self, url: str, notification_ids: list[int], *, worker: str, lease: timedelta, margin: timedelta,
                 claimed_until: datetime, writes: Writes):
        self._url = url
        self._worker = worker
        self._lease = lease
        self._margin = margin
        self._ours = set(notification_ids)
        self._settled: set[int] = set()
        self._until = claimed_until
        self.lock = threading.Lock()
        self.writes = writes
        self.renewals = 0

    def may_send(self, notification_id: int) -> bool:
        """True if the row is ours and its claim outlasts a send. While the database takes no writes
        this waits, at most until the claim runs short: then false, and the row is never sent here."""
        pause = RETRY_WRITES_SECONDS[0]
        while True:
            if self.writes.open:
                with self.lock:
                    try:
                        self._renew_if_short()
                    except Exception as error:  # the database went away: wait below, then try again
                        self.writes.failed("claim renewals", error)
                    else:
                        return notification_id in self._ours
            if utcnow() + self._margin >= self._until:
                return False  # too late to send safely; the claim lapses and the row is claimed again
            self.writes.wait(pause)
            pause = min(pause * 2, RETRY_WRITES_SECONDS[1])

    def keep_alive(self) -> None:
        """Renew the batch's claims if they would lapse within the margin, whether or not anything is
        being sent: rows sent and not yet marked stay this worker's while their mark waits, so no other
        worker takes them over and sends them again. A failure is left to the next call."""
        if not self.writes.open:
            return
        with self.lock:
            try:
                self._renew_if_short()
            except Exception as error:  # the database went away: the marks' retries notice it too
                self.writes.failed("claim renewals", error)

    def _renew_if_short(self) -> None:
        now = utcnow()
        if now + self._margin < self._until:
            return
        until = now + self._lease
        with session_scope(self._url) as session:
            self._ours &= renew_claims(session, self._ours - self._settled, worker=self._worker,
                                       until=until) | self._settled
        self._until = until
        self.renewals += 1

    def settled(self, notification_ids) -> None:
        """These rows are no longer ours to keep (marked sent, failed or deferred). Called under `lock`
        or from the thread that owned the row."""
        self._settled.update(notification_ids)


@dataclass
class _Failure:
    notification: Notification
    error: str
    retryable: bool


@dataclass
class _Marks:
    """Outcomes not yet written, filled by the sending threads, emptied by the batch's thread."""

    sent: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    deferred: dict[int, float] = field(default_factory=dict)  # id -> seconds to wait
    failed: list[_Failure] = field(default_factory=list)  # failures the database did not take at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[list[tuple[int, str | None, str | None]], dict[int, float], list[_Failure]]:
        with self.lock:
            taken = self.sent, self.deferred, self.failed
            self.sent, self.deferred, self.failed = [], {}, []
        return taken

    def give_back(self, sent, deferred, failed) -> None:
        with self.lock:
            self.sent[:0] = sent
            self.deferred = deferred | self.deferred
            self.failed[:0] = failed

    def __len__(self) -> int:
        with self.lock:
            return len(self.sent) + len(self.deferred) + len(self.failed)


def send_batch(batch: list[Notification], *, url: str, worker: str, settings: Settings, limits: ChannelLimits,
               claimed_until: datetime, lease: timedelta) -> Counter:
    """Send a batch this worker has claimed; the outcome of each row (sent, failed, dead, deferred,
    taken_over, repeated: sent while another worker held it too)."""
    if not batch:
        return Counter()
    writes = Writes()
    keeper = ClaimKeeper(url, [stored_id(n) for n in batch], worker=worker, lease=lease, claimed_until=claimed_until,
                         margin=settings.send_margin, writes=writes)
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
            keeper.keep_alive()
            if time.monotonic() - last_recorded >= MARK_EVERY_SECONDS or not writes.open:
                _record(url, worker, settings, marks, keeper, outcomes)
                last_recorded = time.monotonic()
    finally:
        _record_until_written(url, worker, settings, marks, keeper, outcomes)
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


def _record(url: str, worker: str, settings: Settings, marks: _Marks, keeper: ClaimKeeper, outcomes: Counter) -> bool:
    """Write what was sent, held by the rate limit or failed, in one transaction; true when it landed.
    If it did not, everything is kept for the next try and sending pauses until one lands."""
    sent, deferred, failed = marks.take()
    if not sent and not deferred and not failed and keeper.writes.open:
        return True
    now = utcnow()
    try:
        with keeper.lock, session_scope(url) as session:
            if not sent and not deferred and not failed:  # only asking whether writes land again
                session.execute(text("SELECT 1"))
            marked = mark_sent_many(session, sent, worker=worker, now=now)
            by_wait: dict[float, list[int]] = {}
            for notification_id, seconds in deferred.items():
                by_wait.setdefault(seconds, []).append(notification_id)
            for seconds, ids in by_wait.items():
                defer_many(session, ids, worker=worker, until=now + timedelta(seconds=seconds))
            for failure in failed:
                mark_failed(session, failure.notification, failure.error, worker=worker, now=now,
                            backoff_seconds=settings.delivery_backoff_seconds,
                            max_attempts=settings.delivery_max_attempts,
                            retryable=failure.retryable)
            keeper.settled([i for i, _, _ in sent] + list(deferred) + [stored_id(f.notification) for f in failed])
    except Exception as error:
        marks.give_back(sent, deferred, failed)
        keeper.writes.failed(f"{len(sent)} sent marks", error)
        return False
    keeper.writes.landed()
    if marked.repeated:
        outcomes["repeated"] += len(marked.repeated)
        log.warning("%s messages were sent again after their claims lapsed and another worker took them: %s",
                    len(marked.repeated), marked.repeated[:20], extra={"repeated": len(marked.repeated)})
    return True


def _record_until_written(url: str, worker: str, settings: Settings, marks: _Marks, keeper: ClaimKeeper,
                          outcomes: Counter) -> None:
    """`_record` until it lands, waiting between tries: what went out must be marked, or it goes out
    again. Bounded: past GIVE_UP_WRITING_SECONDS the marks are given up, logged, and those messages
    are sent again once their claims lapse."""
    deadline = time.monotonic() + GIVE_UP_WRITING_SECONDS
    pause = RETRY_WRITES_SECONDS[0]
    while not _record(url, worker, settings, marks, keeper, outcomes):
        keeper.keep_alive()
        if time.monotonic() >= deadline:
            log.error("gave up marking %s sent messages after %.0fs without the database; they will be sent "
                      "again when their claims lapse", len(marks), GIVE_UP_WRITING_SECONDS)
            return
        time.sleep(pause)
        pause = min(pause * 2, RETRY_WRITES_SECONDS[1])
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
        return "taken_over"  # our claim lapsed (another worker sends it) or would lapse mid-send
    try:
        code = notification.facts.get("code") if notification.facts else None
        links = Links.of(code, public_url=settings.public_url, signing_key=settings.signing_key()) if code else None
        if channel == "sms" and notification.audience == "requester" and code and notification.event in SMS_EVENTS:
            # One segment in the requester's language, with a short link to the appeal.
            short = f"{settings.public_url.rstrip('/')}/s/{_short_key(url, code)}"
            message = Rendered("", render_sms(notification.event, code, short, language=notification.language), "")
        else:
            # A QR code where the channel shows one: the requester's e-mail.
            message = words_of(notification, zone=settings.timezone, links=links,
                               qr=channel == "email" and notification.audience == "requester")
        # One Message-ID for every try of this notification: a resend is recognisably the same message.
        send(target, message, settings, key=f"appealflow.{notification_id}.{code or 'notice'}")
    except Exception as error:  # NoRoute, or whatever the channel raised
        return _failed(notification, error, url=url, worker=worker, settings=settings, keeper=keeper, marks=marks)
    with marks.lock:
        marks.sent.append((notification_id, message.subject, message.text))
    return "sent"


SMS_EVENTS = frozenset(templates("zh")["sms"]) & frozenset(templates("en")["sms"])


@lru_cache(maxsize=4096)
def _short_key(url: str, code: str) -> str:
    """The appeal's short key (made on its first text message); kept per process, since it never changes."""
    with session_scope(url) as session:
        return key_for(session, code, now=utcnow())


def _failed(notification: Notification, error: Exception, *, url: str, worker: str, settings: Settings,
            keeper: ClaimKeeper, marks: _Marks) -> str:
    """Record a failed send (another attempt later, or a dead letter); if the database takes no write
    now, the batch's thread records it with the marks."""
    notification_id = stored_id(notification)
    retryable = not isinstance(error, NoRoute)
    try:
        with session_scope(url) as session:
            status = mark_failed(session, notification, str(error), worker=worker, now=utcnow(),
                                 backoff_seconds=settings.delivery_backoff_seconds,
                                 max_attempts=settings.delivery_max_attempts, retryable=retryable)
    except Exception as database_error:
        keeper.writes.failed("a failed send", database_error)
        with marks.lock:
            marks.failed.append(_Failure(notification, str(error), retryable))
        return "failed"
    keeper.settled([notification_id])
    given_up = status != "pending"
    channel = channel_of(notification.target)
    (log.error if given_up else log.warning)(
        "message %s (%s to %s) %s through %s, attempt %s: %s", notification.id, notification.event,
        notification.recipient, "dead-lettered" if given_up else "not delivered", channel,
        notification.attempts + 1, error,
        extra={"notification": notification.id, "channel": channel, "reason": str(error)})
    return "dead" if given_up else "failed"
