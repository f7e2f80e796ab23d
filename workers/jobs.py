"""Job functions. Each drains what the database says is waiting, so running one twice is harmless."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from redis.exceptions import RedisError
from rq import get_current_job

from appealflow import metrics
from appealflow.models.routing.dispatch import claim_waiting
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import claim_due, release_abandoned
from appealflow.notifications.delivery import ChannelLimits
from appealflow.notifications.sending import send_batch
from appealflow.settings import Settings, get_settings
from appealflow.workers.liveness import FLOW_TAG, INSTANCE_TAG_PREFIX, instance
from appealflow.workers.queues import DELIVERY, DISPATCH, FILES, wake_quietly, woken

log = logging.getLogger(__name__)


def _current_connection():
    """The Redis connection of the job this worker is running."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("called outside an RQ job")
    return job.connection


def dispatch_waiting() -> dict:
    """Claim a batch of received appeals (waiting briefly to fill it) and run one flow over it."""
    settings = get_settings()
    redis = _current_connection()
    _woken_quietly(redis, DISPATCH)
    started = time.perf_counter()
    lease = timedelta(seconds=settings.claim_lease_seconds)
    size = settings.dispatch_batch_size
    with session_scope(settings.sqlalchemy_url) as session:
        ids = claim_waiting(session, limit=size, lease=lease, now=utcnow(), worker=instance())
    if 0 < len(ids) < size and settings.dispatch_batch_wait_ms:
        time.sleep(settings.dispatch_batch_wait_ms / 1000)
        with session_scope(settings.sqlalchemy_url) as session:
            ids += claim_waiting(session, limit=size - len(ids), lease=lease, now=utcnow(), worker=instance())
    if not ids:
        return {"claimed": 0}
    if len(ids) == size:
        wake_quietly(redis, DISPATCH)  # likely more waiting: let another worker start on it now
    # Prefect is loaded here, not at import: a delivery-only worker never needs it.
    from prefect import tags

    from appealflow.flows.dispatch import dispatch_appeals

    # Tagged with this process, so a reconciler can mark the run crashed if the process dies in it.
    with tags(FLOW_TAG, INSTANCE_TAG_PREFIX + instance()):
        summary = dispatch_appeals(ids)
    metrics.observe_dispatch_batch(time.perf_counter() - started)
    if summary.notifications:
        wake_quietly(redis, DELIVERY)
    log.info("dispatched batch", extra={"claimed": len(ids), "dispatched": summary.dispatched,
                                        "triaged": summary.triaged, "failed": len(summary.failed)})
    return {"claimed": len(ids), "dispatched": summary.dispatched, "triaged": summary.triaged,
            "unchanged": summary.unchanged, "failed": summary.failed}


# Photo copies are background work: nobody waits on a thumbnail the way a citizen waits on the answer
# to their POST. They are made on one thread of this process whose priority is lowered (Linux keeps
# niceness per thread), so on a busy machine intake and dispatch get the cores first. Pillow lets go
# of the GIL while it decodes, shrinks and encodes.
PHOTO_NICENESS = 10
_photo_thread: ThreadPoolExecutor | None = None


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PHOTO_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: made at the usual priority
        log.info("photo copies made at normal priority")


def in_background(data: bytes):
    from appealflow.models.files.images import copies

    global _photo_thread
    if _photo_thread is None:
        _photo_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photos", initializer=_lower_priority)
    return _photo_thread.submit(copies, data).result()


def process_files(rounds: int = 200) -> dict:
    """Make the copies of photos waiting for them, one at a time, until none waits. Several
    workers share the work: each photo is claimed by one."""
    from functools import partial

    from appealflow.models.files.images import process_next
    from appealflow.models.files.store import store_for

    settings = get_settings()
    _woken_quietly(_current_connection(), FILES)
    store = store_for(settings.data_dir, settings.file_store)
    total: Counter = Counter()
    for _ in range(rounds):
        outcome = process_next(partial(session_scope, settings.sqlalchemy_url), store, now=utcnow,
                               make=in_background)
        if outcome is None:
            break
        total[outcome] += 1
    return dict(total)


def deliver_due() -> dict:
    """Hand due notifications to this process's delivery pump and return at once, so an RQ worker
    never sits waiting on a mail server; without a pump (a burst worker), send them here."""
    _woken_quietly(_current_connection(), DELIVERY)
    if _pump is not None and _pump.running:
        _pump.kick()
        return {"handed_to": "pump"}
    return dict(deliver_until_done())


def deliver_until_done(should_stop=lambda: False, *, worker: str | None = None) -> Counter:
    """Claim and send batches until fewer than a batch are due."""
    settings = get_settings()
    outcomes: Counter = Counter()
    while not should_stop():
        batch_outcomes, claimed = deliver_batch(settings, worker=worker)
        outcomes.update(batch_outcomes)
        if claimed < settings.delivery_batch_size:
            return outcomes
    return outcomes


def deliver_batch(settings: Settings, *, worker: str | None = None) -> tuple[Counter, int]:
    """Claim one batch of due outbox rows and send it (notifications/sending.py: several at once,
    marked sent in small groups right after they went). `worker` names the claimant (this process)."""
    lease = timedelta(seconds=settings.claim_lease_seconds)
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    now = utcnow()
    with session_scope(settings.sqlalchemy_url) as session:
        release_abandoned(session, now=now, grace=settings.takeover_grace)
        batch = claim_due(session, limit=settings.delivery_batch_size, lease=lease, now=now, worker=worker)
    outcomes = send_batch(batch, url=settings.sqlalchemy_url, worker=worker, settings=settings,
                          limits=_channel_limits(settings), claimed_until=now + lease, lease=lease)
    return outcomes, len(batch)


_limits: tuple[Settings, ChannelLimits] | None = None


def _channel_limits(settings: Settings) -> ChannelLimits:
    """One set of counters per process (and per settings, which tests change)."""
    global _limits
    if _limits is None or _limits[0] is not settings:
        _limits = (settings, ChannelLimits(settings))
    return _limits[1]


class DeliveryPump:
    """Sends notifications on a thread of its own, woken by delivery jobs. A hung mail server holds
    up this thread (each send is bounded by APPEALFLOW_NOTIFY_TIMEOUT_SECONDS), never dispatch."""

    def __init__(self):
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="delivery-pump", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> DeliveryPump:
        global _pump
        _pump = self
        self._thread.start()
        return self

    def kick(self) -> None:
        self._wanted.set()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._wanted.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.is_set():
                return
            try:
                outcomes = deliver_until_done(self._stop.is_set)
                if outcomes:
                    log.info("delivered %s", dict(outcomes))
            except Exception:  # the database or a channel failed: the reconciler wakes us again
                log.exception("delivery pass failed; the next wake-up tries again")


_pump: DeliveryPump | None = None


def _woken_quietly(redis, kind: str) -> None:
    try:
        woken(redis, kind)
    except RedisError as error:  # the flag only saves an extra job; its TTL clears it anyway
        log.warning("could not clear the %s wake-up flag: %s", kind, error)
