"""A dispatch worker's first batch, routed the moment the process can reach the database.

Importing Prefect and RQ takes a worker one to three seconds on two cores; a worker that is
restarted often (killed, crashing, rescheduled) would route nothing if it were killed before that.
So before loading them the worker claims one batch and routes it with the same domain functions the
flow runs (models/routing/batch.py), without a flow run around it. Every later batch is a flow run."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

log = logging.getLogger(__name__)


def route_first_batch() -> dict:
    """Claim and route one batch, if any is waiting; what came of it. Never raises: the worker's
    ordinary loop takes over whatever this could not do."""
    started = time.perf_counter()
    try:
        from appealflow.models.routing.batch import route_batch
        from appealflow.models.routing.dispatch import claim_waiting
        from appealflow.models.storage.columns import utcnow
        from appealflow.models.storage.db import session_scope
        from appealflow.settings import get_settings

        settings = get_settings()
        with session_scope(settings.sqlalchemy_url) as session:
            ids = claim_waiting(session, limit=settings.dispatch_batch_size,
                                lease=timedelta(seconds=settings.claim_lease_seconds), now=utcnow())
        if not ids:
            return {"claimed": 0}
        summary = route_batch(ids)
    except Exception:
        log.exception("the first batch could not be routed before start-up; the worker's loop will")
        return {"claimed": 0, "error": True}
    seconds = time.perf_counter() - started
    from appealflow import metrics

    metrics.observe_dispatch_batch(seconds)
    outcome = {"claimed": len(ids), "dispatched": summary.dispatched, "triaged": summary.triaged,
               "seconds": round(seconds, 3)}
    log.info("routed a first batch before loading Prefect", extra=outcome)
    if summary.notifications:
        _wake_delivery(settings)
    return outcome


def _wake_delivery(settings) -> None:
    try:
        from appealflow.workers.queues import DELIVERY, connect, wake_quietly

        wake_quietly(connect(), DELIVERY)
    except Exception as error:  # the reconciler wakes delivery anyway
        log.warning("could not wake delivery after the first batch: %s", error)
