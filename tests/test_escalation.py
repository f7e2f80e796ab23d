"""Deadline clocks across time: warning, breach and severe each fire once, to the right people,
also when two sweeps race; the clock moves without sleeping (the sweep takes the moment)."""

from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from appealflow.flows.dispatch import dispatch_appeals
from appealflow.flows.escalation import sweep_deadlines
from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.clocks.escalation import DeadlineClock, Escalation
from appealflow.models.routing.dispatch import claim_waiting
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.conftest import at_once, on_both


def dispatched_appeal(url: str, **fields) -> Appeal:
    with session_scope(url) as session:
        appeal = receive(session, NewAppeal(**{
            "channel": "web", "appeal_type": "complaint", "priority": "normal", "title": "楼上漏水",
            "text": "楼上邻居家漏水到我家，协商无果。", "category_code": "neighbourhood_disputes", "district": "shinan",
            "street": "badaguan", "requester_email": "r@example.test", **fields}), now=utcnow(), actor="requester")
    with session_scope(url) as session:
        ids = claim_waiting(session, limit=10, lease=timedelta(seconds=60), now=utcnow())
    dispatch_appeals(ids)
    with session_scope(url) as session:
        return session.get(Appeal, appeal.id)


def racing_sweeps(now) -> list[dict]:
    """Two sweeps at once through the database. The flow's body, without a Prefect run for each of the
    sixteen: tests/test_schedule_and_policies.py runs the sweep as a scheduled deployment."""
    return at_once(lambda: sweep_deadlines.fn(now))


def fired(url: str) -> Counter:
    with session_scope(url) as session:
        return Counter((e.clock, e.tier) for e in session.execute(select(Escalation)).scalars())


@on_both
def test_tiers_fire_once_each_with_the_right_recipients_under_racing_sweeps(env):
    url = get_settings().sqlalchemy_url
    appeal = dispatched_appeal(url)
    assert appeal.department_code == "shinan_badaguan"  # a street office, under the district government
    with session_scope(url) as session:
        resolve = session.execute(select(DeadlineClock).where(DeadlineClock.appeal_id == appeal.id,
                                                              DeadlineClock.clock == "resolve")).scalar_one()
    assert resolve.warn_at < resolve.due_at < resolve.severe_at

    racing_sweeps(resolve.warn_at - timedelta(minutes=1))
    assert ("resolve", "warning") not in fired(url)
    for tier, moment in (("warning", resolve.warn_at), ("breach", resolve.due_at), ("severe", resolve.severe_at)):
        racing_sweeps(moment + timedelta(minutes=1))
        racing_sweeps(moment + timedelta(minutes=2))  # and again: nothing more fires
        assert fired(url)[("resolve", tier)] == 1, tier
    assert set(fired(url).values()) == {1}
    assert {tier for clock, tier in fired(url)} == {"warning", "breach", "severe"}

    with session_scope(url) as session:
        notices = [(n.recipient, n.event, n.facts["clock"], n.target) for n in session.execute(
            select(Notification).where(Notification.dedupe_key.like(f"{appeal.id}:escalation_%"))).scalars()]
        events = session.execute(select(AppealEvent.kind).where(AppealEvent.appeal_id == appeal.id,
                                                                AppealEvent.kind.like("escalation_%"))).scalars()
        assert Counter(events) == Counter({"escalation_warning": 3, "escalation_breach": 3, "escalation_severe": 3})

    def told(event: str) -> set[str]:
        return {r for r, kind, clock, _ in notices if kind == event and clock == "resolve"}

    assert told("escalation_warning") == {"department:shinan_badaguan"}
    assert told("escalation_breach") == {"department:shinan_badaguan", "department:hotline_centre"}
    assert told("escalation_severe") == {"department:shinan_badaguan", "department:hotline_centre",
                                         "department:shinan_gov"}
    assert len(notices) == len(set(notices))  # each target once per tier and clock


def test_a_satisfied_clock_stops_and_a_paused_one_waits(env):
    url = get_settings().sqlalchemy_url
    appeal = dispatched_appeal(url)
    with session_scope(url) as session:
        clocks = {c.clock: c for c in session.execute(
            select(DeadlineClock).where(DeadlineClock.appeal_id == appeal.id)).scalars()}
        from appealflow.models.clocks.escalation import pause_clocks, stop_clocks

        stop_clocks(session, appeal.id, ("accept",))
        pause_clocks(session, appeal.id)
    sweep_deadlines(clocks["resolve"].severe_at + timedelta(days=1))
    assert fired(url) == Counter()


def test_days_pass_in_seconds_for_every_process(stack, env, tmp_path, monkeypatch):
    """The shared clock file moves time for the API, the workers and the sweep at once."""
    import httpx

    from tests.staff import create_staff, sign_in

    clock = tmp_path / "clock"
    clock.write_text("0")
    monkeypatch.setenv("APPEALFLOW_CLOCK_FILE", str(clock))
    stack.env["APPEALFLOW_CLOCK_FILE"] = str(clock)
    get_settings.cache_clear()
    create_staff()
    api = httpx.Client(base_url=stack.start_api(), timeout=30)
    stack.start_worker()
    created = api.post("/appeals", json={
        "type": "complaint", "title": "楼上漏水", "text": "楼上邻居家漏水到我家，协商无果。",
        "category": "neighbourhood_disputes", "location": {"district": "shinan", "street": "badaguan"},
        "requester": {"email": "r@example.test"}}).json()
    url = get_settings().sqlalchemy_url
    from tests.test_dispatch_end_to_end import wait_for

    def dispatched():
        with session_scope(url) as session:
            return session.execute(select(Appeal).where(Appeal.code == created["code"])).scalar_one().resolve_due_at

    wait_for(dispatched, timeout=60, what="dispatch")
    supervisor = sign_in(api, "supervisor")
    assert api.get("/supervision/overdue", headers=supervisor).json()["rows"] == []

    clock.write_text(str(timedelta(days=10).total_seconds()))  # ten days later, everywhere
    assert sweep_deadlines()["severe"] >= 1
    overdue = api.get("/supervision/overdue", headers=supervisor).json()["rows"]
    assert [row["code"] for row in overdue] == [created["code"]] and overdue[0]["hours_late"] > 24
    assert ("resolve", "severe") in fired(url)
    api.close()
