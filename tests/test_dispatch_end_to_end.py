"""Appeals posted over HTTP reach the department the catalogue names, with deadlines, notified once."""

import random
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import AppealStatus, NotificationStatus
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from appealflow.workers.liveness import INSTANCE_TAG_PREFIX
from tests.appeals import CatalogueOracle, appeal_body
from tests.conftest import on_postgresql
from tests.staff import create_staff, sign_in


def wait_for(condition, *, timeout: float, every: float = 0.2, what: str):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value and not (isinstance(value, tuple) and value[0] is False):
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last seen: {value!r})")


def count_by_status(url: str) -> Counter:
    with session_scope(url) as session:
        return Counter(dict(session.execute(select(Appeal.status, func.count()).group_by(Appeal.status)).all()))


# On PostgreSQL: on SQLite, tests/test_nothing_lost.py walks the same path with a worker killed half way.
@on_postgresql
def test_two_hundred_appeals_are_dispatched_by_the_rules_and_notified_once(stack, smtp, prefect_api):
    oracle = CatalogueOracle()
    rng = random.Random(12345)
    cases = [appeal_body(rng, oracle, n) for n in range(1, 201)]
    api = stack.start_api()
    stack.start_worker()
    stack.start_worker()

    create_staff()  # hotline appeals are filed by a signed-in operator
    with httpx.Client(base_url=api) as client:
        operator = sign_in(client, "operator")

    def post(case):
        body, _ = case
        headers = operator if body.get("channel") == "hotline" else {}
        response = httpx.post(f"{api}/appeals", json=body, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["code"]

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(post, cases))
    expected = dict(zip(codes, (dept for _, dept in cases), strict=True))

    url = get_settings().sqlalchemy_url
    wait_for(lambda: count_by_status(url)[AppealStatus.received] == 0, timeout=90, what="dispatch")
    with session_scope(url) as session:
        appeals = {a.code: a for a in session.execute(select(Appeal)).scalars()}
        decided = Counter(dict(session.execute(
            select(AppealEvent.appeal_id, func.count()).where(AppealEvent.kind.in_(["route", "triage"]))
            .group_by(AppealEvent.appeal_id)).all()))
    assert len(appeals) == 200
    for code, department in expected.items():
        appeal = appeals[code]
        if department is None:
            assert appeal.status == AppealStatus.triage, code
            continue
        assert appeal.status == AppealStatus.dispatched, (code, appeal.routing_reason)
        assert appeal.department_code == department, (code, appeal.routing_reason)
        assert appeal.received_at < appeal.accept_due_at <= appeal.resolve_due_at
    assert set(decided.values()) == {1}, "every appeal has exactly one dispatch (or triage) event"
    assert len(decided) == 200

    # Every outbox row reaches its receiver exactly once.
    def all_sent():
        with session_scope(url) as session:
            statuses = Counter(dict(session.execute(
                select(Notification.status, func.count()).group_by(Notification.status)).all()))
        return statuses if set(statuses) == {NotificationStatus.sent} else (False, statuses)

    statuses = wait_for(all_sent, timeout=90, what="delivery of every notification")
    received = smtp.counts()
    assert sum(received.values()) == statuses[NotificationStatus.sent]
    assert set(received.values()) == {1}, "no message was delivered twice"
    for code in codes:  # "received", then "dispatched" once placed (triage is the centre's business)
        requester = f"citizen{int(appeals[code].requester_phone[-4:])}@example.test"
        told = [subject for (to, subject), n in received.items() if to == requester and code in subject]
        assert len(told) == (1 if expected[code] is None else 2), told
        assert all(subject.startswith(f"您的诉求 {code} ") for subject in told), told

    # The routing ran as Prefect flow runs of these workers (the server is the whole test run's), and
    # they completed.
    ours = [f"{INSTANCE_TAG_PREFIX}{socket.gethostname()}:{worker.pid}" for worker in stack.workers]
    runs = httpx.post(f"{prefect_api}/flow_runs/filter", json={
        "flows": {"name": {"any_": ["dispatch-appeals"]}}, "flow_runs": {"tags": {"any_": ours}},
        "limit": 200}).json()
    assert runs and {run["state_type"] for run in runs} == {"COMPLETED"}
