"""The worker process: an RQ SimpleWorker, plus a reconciler that wakes it for what the database
says is waiting, so a lost job or a dead worker's claim is picked up without anyone asking.

The process outlives Redis and database outages: RQ's loop quits when Redis vanishes mid-job, so
`run_worker` waits for Redis with backoff and starts the loop again; the reconciler thread keeps
working from the database throughout; nothing here exits unless asked to (SIGTERM/SIGINT).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker

from appealflow.models.files.attachments import photos_waiting
from appealflow.models.routing.dispatch import claimants, has_waiting, release_claims_of
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import next_due_at, release_abandoned
from appealflow.settings import get_settings
from appealflow.workers import liveness
from appealflow.workers.jobs import DeliveryPump
from appealflow.workers.queues import DELIVERY, DISPATCH, FILES, QUEUES, connect, wake

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 5.0
CRASH_SWEEP_SECONDS = 5.0


class Backoff:
    """Exponential waits from `first` up to `limit`, reset after a success."""

    def __init__(self, first: float = 0.5, limit: float = MAX_BACKOFF_SECONDS):
        self.first, self.limit, self.next = first, limit, first

    def wait(self, stop: threading.Event) -> float:
        waited = self.next
        self.next = min(self.next * 2, self.limit)
        stop.wait(waited)
        return waited

    def reset(self) -> None:
        self.next = self.first


class _Worker(SimpleWorker):
    """Remembers that a stop was asked for: RQ's loop ends the same way when Redis vanishes."""

    stop_asked = False
    # RQ's idle loop retries Redis itself, but backs off to a minute; keep it near our own bound.
    max_connection_wait_time = MAX_BACKOFF_SECONDS

    def request_stop(self, signum, frame):
        self.stop_asked = True
        super().request_stop(signum, frame)


def reconcile_once(redis, kinds=tuple(QUEUES)) -> list[str]:
    """Wake jobs for work the database holds: unclaimed or abandoned appeals (a dead worker's claims
    given back as soon as it is known dead), due notifications."""
    woke = []
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        now = utcnow()
        release_abandoned(session, now=now, grace=settings.takeover_grace)
        if DISPATCH in kinds:
            dead = [who for who in claimants(session, now=now) if liveness.is_dead(redis, who)]
            if dead and release_claims_of(session, dead):
                log.warning("released the claims of dead dispatch workers %s", dead)
        if DISPATCH in kinds and has_waiting(session, now=now) and wake(redis, DISPATCH, unless_queued=True):
            woke.append(DISPATCH)
        due = next_due_at(session) if DELIVERY in kinds else None
        if due is not None and due <= now and wake(redis, DELIVERY, unless_queued=True):
            woke.append(DELIVERY)
        if FILES in kinds and photos_waiting(session) and wake(redis, FILES, unless_queued=True):
            woke.append(FILES)
    return woke


class _Reconciler:
    """Every `interval`: beat this process's liveness key, wake jobs for what the database holds,
    and now and then mark flow runs of dead workers crashed. Each part fails on its own, logged
    once per outage rather than every pass."""

    def __init__(self, stop: threading.Event, *, name: str, kinds: tuple[str, ...]):
        settings = get_settings()
        self.stop, self.name, self.kinds = stop, name, kinds
        self.interval = settings.reconcile_interval_seconds
        self.ttl = liveness.alive_ttl(self.interval)
        self.failing: dict[str, str] = {}
        self.next_sweep = 0.0

    def _step(self, part: str, call) -> None:
        try:
            call()
        except Exception as error:
            if part not in self.failing:
                log.warning("%s failing (%s: %s); retrying every %.1fs", part, type(error).__name__, error,
                            self.interval)
            self.failing[part] = str(error)
        else:
            if self.failing.pop(part, None) is not None:
                log.warning("%s recovered", part)

    def once(self, redis: Redis, *, sweep: bool = True) -> None:
        self._step("liveness beat (redis)", lambda: liveness.beat(redis, self.ttl, name=self.name))
        self._step("reconciliation", lambda: reconcile_once(redis, self.kinds))
        if sweep and DISPATCH in self.kinds and time.monotonic() >= self.next_sweep:
            self.next_sweep = time.monotonic() + CRASH_SWEEP_SECONDS
            self._step("crashed flow run sweep", lambda: liveness.sweep_crashed_runs(
                redis, every=CRASH_SWEEP_SECONDS, grace=self.ttl))

    def run(self) -> None:
        redis = connect()
        while not self.stop.wait(self.interval):
            self.once(redis)


def _wait_for_redis(redis: Redis, stop: threading.Event) -> bool:
    """Block until Redis answers (true) or a stop is asked (false), logging the outage."""
    backoff = Backoff()
    since = time.monotonic()
    while not stop.is_set():
        try:
            redis.ping()
        except RedisError as error:
            waited = backoff.wait(stop)
            log.warning("Redis unreachable for %.0fs (%s); next try in %.1fs", time.monotonic() - since, error,
                        waited)
            continue
        if time.monotonic() - since > 1:
            log.warning("Redis is back after %.0fs", time.monotonic() - since)
        return True
    return False


def _ask_stop_on_signals(stop: threading.Event) -> None:
    def _stop(*_):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def _without_flow_heartbeats(kinds: tuple[str, ...]):
    """For a dispatch worker, Prefect's flow-run heartbeat turned off; a delivery-only worker runs no
    flow and never loads Prefect (a second or more of start-up on two cores)."""
    if DISPATCH not in kinds:
        return contextlib.nullcontext()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


def run_worker(*, burst: bool = False, name: str | None = None, queues: list[str] | None = None) -> None:
    settings = get_settings()
    kinds = tuple(queues or QUEUES)
    name = name or f"appealflow-{os.getpid()}"
    redis = connect()
    stop = threading.Event()
    # Between RQ loops (while waiting for Redis) RQ's handlers are gone: stop on our own.
    _ask_stop_on_signals(stop)
    reconciler = _Reconciler(stop, name=name, kinds=kinds)
    # The first pass before RQ starts; the crash sweep (a Prefect call, slow when Prefect is down)
    # waits for the reconciler thread, so a restarted worker registers at once.
    reconciler.once(redis, sweep=False)
    pump = DeliveryPump().start() if DELIVERY in kinds and not burst else None
    if not burst:
        threading.Thread(target=reconciler.run, name="reconciler", daemon=True).start()
    backoff = Backoff()
    try:
        # A sync flow run joins its heartbeat thread on exit (about 1 s); the worker's own liveness
        # key and the database's claims already tell when a worker died.
        with _without_flow_heartbeats(kinds):
            while not stop.is_set() and _wait_for_redis(redis, stop):
                worker = _Worker([QUEUES[k] for k in kinds], connection=redis, name=name,
                                 worker_ttl=settings.worker_ttl_seconds, maintenance_interval=60,
                                 default_result_ttl=60)
                started = time.monotonic()
                try:
                    liveness.clear_stale_registration(redis, name)
                    worker.work(burst=burst, logging_level=settings.log_level)
                except Exception as error:  # Redis gone during start-up or teardown, or a live namesake
                    log.warning("RQ loop of %s failed: %s: %s", name, type(error).__name__, error)
                _ask_stop_on_signals(stop)
                if worker.stop_asked or burst:
                    break
                if time.monotonic() - started > 60:
                    backoff.reset()
                waited = backoff.wait(stop)
                log.warning("RQ loop of %s ended without a stop request (Redis gone?); restarting it "
                            "(waited %.1fs)", name, waited)
    finally:
        stop.set()
        if pump is not None:
            pump.stop()
        with contextlib.suppress(RedisError):
            liveness.forget(redis)
