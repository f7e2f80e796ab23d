"""The dispatch flow: one flow run per batch of waiting appeals, a task per step of the batch. The
steps themselves are plain functions (models/routing/batch.py)."""

from prefect import flow, task
from prefect.context import TagsContext

from appealflow.models.city.reference import Reference
from appealflow.models.routing.batch import decide_batch, record_batch
from appealflow.models.routing.dispatch import Decision, DispatchSummary


@task(name="decide-routes")
def decide_routes(appeal_ids: list[int]) -> tuple[list[Decision], dict, Reference, list[str]]:
    return decide_batch(appeal_ids)


@task(name="record-dispatch")
def record_dispatch(decisions: list[Decision], appeals: dict, ref: Reference) -> DispatchSummary:
    return record_batch(decisions, appeals, ref)


@flow(name="dispatch-appeals", log_prints=False)
def dispatch_appeals(appeal_ids: list[int]) -> DispatchSummary:
    """Route a batch of received appeals to departments, or to triage."""
    # The worker's tags name this flow run (the crash sweep finds a dead worker's runs by them). Left
    # on the tasks, each task would first ask the Prefect server for concurrency slots for its tags
    # (tag-based limits, none of which exist here): two more round trips per batch, and under load
    # the calls that kept appeals waiting for seconds (83% of a flow run's time in one profile).
    with TagsContext(current_tags=set()):
        decisions, appeals, ref, failed = decide_routes(appeal_ids)
        summary = record_dispatch(decisions, appeals, ref)
    summary.failed = failed + summary.failed
    return summary
