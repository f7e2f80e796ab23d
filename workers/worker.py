"""The worker process: an RQ SimpleWorker, plus a reconciler that wakes it for what the database
says is waiting, so a lost job or a dead worker's claim is picked up without anyone asking."""

import logging
import os
import threading

from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from rq import SimpleWorker

from appealflow.models.columns import utcnow
from appealflow.models.db import session_scope
from appealflow.models.dispatch import has_waiting
from appealflow.models.outbox import next_due_at, release_abandoned
from appealflow.settings import get_settings
from appealflow.workers.queues import DELIVERY, DISPATCH, QUEUES, connect, wake

log = logging.getLogger(__name__)


def reconcile_once(redis) -> list[str]:
    """Wake jobs for work the database holds: unclaimed or abandoned appeals, due notifications."""
    woke = []
    with session_scope(get_settings().sqlalchemy_url) as session:
        now = utcnow()
        release_abandoned(session, now=now)
        if has_waiting(session, now=now) and wake(redis, DISPATCH, unless_queued=True):
            woke.append(DISPATCH)
        due = next_due_at(session)
        if due is not None and due <= now and wake(redis, DELIVERY, unless_queued=True):
            woke.append(DELIVERY)
    return woke


def _reconcile_forever(stop: threading.Event, interval: float) -> None:
    redis = connect()
    while not stop.wait(interval):
        try:
            reconcile_once(redis)
        except Exception:
            log.exception("reconciliation pass failed; trying again in %.1fs", interval)


def run_worker(*, burst: bool = False, name: str | None = None) -> None:
    settings = get_settings()
    redis = connect()
    stop = threading.Event()
    reconcile_once(redis)
    if not burst:
        threading.Thread(target=_reconcile_forever, args=(stop, settings.reconcile_interval_seconds),
                         name="reconciler", daemon=True).start()
    worker = SimpleWorker(
        list(QUEUES.values()), connection=redis, name=name or f"appealflow-{os.getpid()}",
        worker_ttl=settings.worker_ttl_seconds, maintenance_interval=60, default_result_ttl=60,
    )
    # A sync flow run joins its heartbeat thread on exit (about 1 s); the worker's own heartbeat
    # in Redis and the database's claims already tell when a worker died.
    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        try:
            worker.work(burst=burst, logging_level=os.environ.get("APPEALFLOW_LOG_LEVEL", "WARNING"))
        finally:
            stop.set()
