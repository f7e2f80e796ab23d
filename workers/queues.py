"""The queues, and wake-ups that coalesce: many appeals arriving make one waiting job, not many.

A job does not carry appeals; it drains what the database says is waiting. So a lost job loses
nothing, and a burst of ten thousand appeals is ten thousand rows and a handful of jobs.
"""

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from appealflow.redis_url import redis_url

DISPATCH = "dispatch"
DELIVERY = "delivery"
FILES = "files"
# Listed in the order a worker serves them: a backlog of messages must not hold up routing, nor
# photos waiting for their copies.
QUEUES = {DISPATCH: "appealflow-dispatch", DELIVERY: "appealflow-delivery", FILES: "appealflow-files"}
JOBS = {DISPATCH: "appealflow.workers.jobs.dispatch_waiting", DELIVERY: "appealflow.workers.jobs.deliver_due",
        FILES: "appealflow.workers.jobs.process_files"}
WAKE_TTL_SECONDS = 30

log = logging.getLogger(__name__)


def connect() -> Redis:
    # A bounded connect so a Redis that is down (or a blackholed address) fails fast and the caller's
    # backoff decides what happens next; no read timeout, as RQ blocks on BLPOP by design.
    return Redis.from_url(redis_url(), socket_connect_timeout=5, socket_keepalive=True)


def queue(connection: Redis, kind: str) -> Queue:
    return Queue(QUEUES[kind], connection=connection)


def _flag(kind: str) -> str:
    return f"appealflow:wake:{kind}"


def wake(connection: Redis, kind: str, *, unless_queued: bool = False) -> bool:
    """Make sure a `kind` job is waiting; return whether this call enqueued it.

    `unless_queued` is the reconciler's check: the flag says a job is coming, but the process that
    set it may have died before enqueuing it, so an empty queue gets a job regardless.
    """
    flagged_now = connection.set(_flag(kind), 1, nx=True, ex=WAKE_TTL_SECONDS)
    if not flagged_now and not (unless_queued and queue(connection, kind).count == 0):
        return False
    queue(connection, kind).enqueue(JOBS[kind], job_timeout=600, result_ttl=60, failure_ttl=24 * 3600,
                                    description=f"{kind}: drain what is waiting")
    return True


def woken(connection: Redis, kind: str) -> None:
    """Called as a job starts: anything that arrives from now on needs a job of its own."""
    connection.delete(_flag(kind))


def wake_quietly(connection: Redis, kind: str) -> bool:
    """`wake` for callers that have already done their work in the database: if Redis is gone the
    reconciler wakes the job from what the database says, so failing here must not fail the caller."""
    try:
        return wake(connection, kind)
    except RedisError as error:
        log.warning("could not wake %s (%s); the reconciler will", kind, error)
        return False
