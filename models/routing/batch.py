"""One batch of claimed appeals routed: decide where each goes, then record it all in one transaction.
Plain Python: the dispatch flow runs these as its two tasks, and a worker that has just started runs
them directly for its first batch, before Prefect has loaded."""

import logging

from appealflow.models.city.reference import Reference, read_reference
from appealflow.models.routing.classifier import embedder
from appealflow.models.routing.classifier_store import active_model
from appealflow.models.routing.dispatch import Decision, DispatchSummary, decide_all, load_claimed, record, with_twins
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import Settings, get_settings

log = logging.getLogger(__name__)


def routing_model(session, settings: Settings):
    """The active routing model, loaded once per worker process and kept until another is promoted;
    None (keyword rules alone) when turned off or when it cannot load."""
    if settings.routing_model == "off":
        return None
    try:
        return active_model(session, settings.routing_model, settings.model_cache_dir)
    except Exception:
        log.exception("routing model unavailable; keyword rules decide")
        return None


def decide_batch(appeal_ids: list[int]) -> tuple[list[Decision], dict, Reference, list[str]]:
    """Where each claimed appeal goes (and its probable twins); the codes that could not be decided."""
    settings = get_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        ref = read_reference(session, hours=settings.working_hours, zone=settings.timezone)
        appeals = load_claimed(session, appeal_ids)
        model = routing_model(session, settings)
    embed = embedder(settings.routing_model).embed if model is not None else None
    vectors: dict = {}
    decisions, failed = decide_all(appeals, ref, calendar=ref.calendar, min_confidence=settings.routing_min_confidence,
                                   model=model, embed=embed, vectors=vectors)
    by_id = {a.id: a for a in appeals}
    if settings.duplicates_at_intake and decisions:
        decisions = probable_twins(settings, decisions, by_id, ref, vectors)
    return decisions, by_id, ref, failed


def probable_twins(settings: Settings, decisions: list[Decision], appeals: dict, ref: Reference,
                   vectors: dict) -> list[Decision]:
    """Decisions with their probable twins among open appeals, routed as those went. Finding twins
    failing must not stop dispatch: the decisions stand as routing made them."""
    def embed(texts: list[str]):
        # Loaded only when some appeal shares a named place with an open one.
        return embedder(settings.embedding_backend).embed(texts)

    # The batch's own vectors are the routing model's: the same space only when duplicates embed
    # with the same backend.
    same = settings.routing_model == settings.embedding_backend
    try:
        with session_scope(settings.sqlalchemy_url) as session:
            return with_twins(session, appeals, decisions, ref, calendar=ref.calendar, embed=embed,
                              vectors=vectors if same else {}, embedder=settings.embedding_backend)
    except Exception:
        log.exception("looking for probable duplicates failed; routing decides alone")
        return decisions


def record_batch(decisions: list[Decision], appeals: dict, ref: Reference) -> DispatchSummary:
    """Record the batch in one transaction; if that fails, one transaction per appeal isolates the culprit."""
    url = get_settings().sqlalchemy_url
    try:
        with session_scope(url) as session:
            return record(session, decisions, appeals, ref, now=utcnow())
    except Exception:
        log.exception("recording the batch failed; recording appeal by appeal")
    summary = DispatchSummary()
    for decision in decisions:
        try:
            with session_scope(url) as session:
                one = record(session, [decision], appeals, ref, now=utcnow())
        except Exception:
            log.exception("recording dispatch failed", extra={"appeal": decision.code})
            summary.failed.append(decision.code)
            continue
        summary.dispatched += one.dispatched
        summary.triaged += one.triaged
        summary.unchanged += one.unchanged
        summary.notifications += one.notifications
    return summary


def route_batch(appeal_ids: list[int]) -> DispatchSummary:
    """Decide and record, with no flow run around it."""
    decisions, appeals, ref, failed = decide_batch(appeal_ids)
    summary = record_batch(decisions, appeals, ref)
    summary.failed = failed + summary.failed
    return summary
