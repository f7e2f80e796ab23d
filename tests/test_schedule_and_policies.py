"""The sweep runs as a scheduled Prefect deployment; deadline policies bind new appeals only; the
admin's calendar overrides take effect."""

import subprocess
from datetime import date, timedelta

import httpx
from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.city.department import DeadlinePolicy
from appealflow.models.clocks.calendar import CalendarOverride, load_calendar
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.conftest import BIN
from tests.test_dispatch_end_to_end import wait_for
from tests.test_escalation import dispatched_appeal


def test_the_sweep_and_the_file_collection_run_on_their_schedules_as_prefect_deployments(stack, prefect_api):
    # The runner looks for due runs every second instead of every ten. The collection keeps its hour:
    # one run of it is asked for below, since each run is a process of its own and a busy machine
    # with runs of both every few seconds fills the runner's slots.
    scheduler = stack._spawn(["scheduler"], "scheduler.log", APPEALFLOW_SWEEP_INTERVAL_SECONDS="5",
                             PREFECT_RUNNER_POLL_FREQUENCY="1")
    stack.workers.append(scheduler)  # stopped with the rest

    def deployment(name: str):
        # The run's one Prefect server serves every test process: on a busy machine it can take
        # longer than httpx's 5 s default to answer.
        found = httpx.post(f"{prefect_api}/deployments/filter", timeout=30,
                           json={"deployments": {"name": {"any_": [name]}}}).json()
        return found[0] if found else None

    def completed_runs(name: str):
        served = deployment(name)
        if served is None:
            return None
        runs = httpx.post(f"{prefect_api}/flow_runs/filter", timeout=30, json={
            "deployments": {"id": {"any_": [served["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}).json()
        return runs or None

    runs = wait_for(lambda: completed_runs("sla-sweep"), timeout=180, every=1, what="a scheduled sweep to complete")
    assert runs[0]["deployment_id"]
    collection = wait_for(lambda: deployment("file-collection"), timeout=60, every=1, what="the collection deployment")
    assert collection["schedules"] and collection["schedules"][0]["schedule"]["interval"] == 3600
    httpx.post(f"{prefect_api}/deployments/{collection['id']}/create_flow_run", json={}, timeout=30).raise_for_status()
    runs = wait_for(lambda: completed_runs("file-collection"), timeout=180, every=1,
                    what="a run of the file collection to complete")
    assert runs[0]["deployment_id"] == collection["id"]


def test_a_policy_change_binds_new_appeals_only(env):
    url = get_settings().sqlalchemy_url
    before = dispatched_appeal(url)
    with session_scope(url) as session:
        session.execute(update(DeadlinePolicy).where(DeadlinePolicy.appeal_type == "complaint",
                                                     DeadlinePolicy.priority == "normal").values(resolve="10d"))
    after = dispatched_appeal(url)
    with session_scope(url) as session:
        kept = session.get(Appeal, before.id)
    assert kept.resolve_due_at == before.resolve_due_at
    assert after.resolve_due_at - after.received_at > before.resolve_due_at - before.received_at + timedelta(days=4)


def test_the_admin_marks_an_announced_working_day(env):
    url = get_settings().sqlalchemy_url
    subprocess.run([str(BIN / "appealflow"), "calendar", "set", "2027-02-20", "--working", "--note", "调休上班"],
                   check=True, capture_output=True)
    with session_scope(url) as session:
        override = session.execute(select(CalendarOverride)).scalar_one()
        assert (override.day, override.working) == (date(2027, 2, 20), True)
        settings = get_settings()
        calendar = load_calendar(session, hours=settings.working_hours, zone=settings.timezone)
        assert calendar.is_working_day(date(2027, 2, 20))
