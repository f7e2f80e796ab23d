"""The escalation sweep: a Prefect deployment on a schedule fires the tiers that are due."""

import logging
from datetime import datetime, timedelta

from prefect import flow

from appealflow.models.appeals.requester import close_unrated
from appealflow.models.clocks.escalation import SweepResult, sweep_batch
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

log = logging.getLogger(__name__)
MAX_BATCHES = 2000


@flow(name="sweep-deadlines", log_prints=False)
def sweep_deadlines(now: datetime | None = None, batch_size: int = 500) -> dict:
    """Fire every tier due by `now` (default: the present), a committed batch at a time, so a sweep
    that dies half way leaves nothing half done and the next one carries on."""
    moment = now or utcnow()
    url = get_settings().sqlalchemy_url
    total = SweepResult()
    for _ in range(MAX_BATCHES):
        with session_scope(url) as session:
            result = sweep_batch(session, now=moment, limit=batch_size)
        total.clocks += result.clocks
        for tier, fired in result.fired.items():
            total.fired[tier] += fired
        if result.clocks < batch_size:
            break
    closed = close_unrated_replies(moment, batch_size)
    if any(total.fired.values()) or closed:
        _wake_delivery()
    return {"clocks": total.clocks, **total.fired, "closed_unrated": closed}


def close_unrated_replies(now: datetime, batch_size: int = 500) -> int:
    """Replies the requester did not rate within APPEALFLOW_RATING_TIMEOUT_HOURS close as not rated."""
    settings = get_settings()
    closed = 0
    for _ in range(MAX_BATCHES):
        with session_scope(settings.sqlalchemy_url) as session:
            done = close_unrated(session, now=now, older_than=timedelta(hours=settings.rating_timeout_hours),
                                 limit=batch_size)
        closed += done
        if done < batch_size:
            break
    return closed


def _wake_delivery() -> None:
    try:
        from appealflow.workers.queues import DELIVERY, connect, wake

        wake(connect(), DELIVERY)
    except Exception:  # the reconciler will find the messages in the outbox
        log.warning("could not wake delivery after the sweep", exc_info=True)


def serve() -> None:
    """Run the scheduled deployments until stopped: the sweep (every minute by default) and the
    collection of unreferenced file bytes (hourly)."""
    from prefect import serve as serve_all

    from appealflow.flows.housekeeping import collect_files

    settings = get_settings()
    sweep = sweep_deadlines.to_deployment(name="sla-sweep",
                                          interval=timedelta(seconds=settings.sweep_interval_seconds))
    collection = collect_files.to_deployment(name="file-collection",
                                             interval=timedelta(seconds=settings.file_collection_interval_seconds))
    serve_all(sweep, collection, pause_on_shutdown=False)  # type: ignore[arg-type]  # sync here: not coroutines
