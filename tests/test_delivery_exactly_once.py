"""Every message exactly once on PostgreSQL with three delivery workers racing, claims renewed while
marks are written, and the database stopped in the middle. Real worker processes, a real SMTP
receiver, and PostgreSQL's own deadlock counter as the witness."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import func, select

from appealflow.models.appeals.enums import NotificationStatus
from appealflow.models.storage.db import engine_for, session_scope
from appealflow.models.telling.outbox import DeliveryAttempt, Notification, repeated_sends
from appealflow.settings import get_settings
from tests.conftest import Stack, on_postgresql
from tests.factories import received_appeals
from tests.test_dispatch_end_to_end import wait_for
from tests.test_faults import outage_environment, private_postgres  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

MESSAGES = 1500
# The outage test's load: enough that the stop lands mid-delivery with all three workers sending.
OUTAGE_MESSAGES = 900
# Leases shorter than the margin a send needs, so every send renews the batch's claims while the
# batch's thread marks what went out: the overlap that deadlocked before. Small batches, many passes.
# The send timeout is 5 s, not less: a read timeout on the relay's final "250" is ambiguous (the relay
# may have the message) and the send is retried, which this test would count as a double; the local
# receiver runs in the test process and answers late when the suite loads the machine.
RACING = {"APPEALFLOW_CLAIM_LEASE_SECONDS": "2", "APPEALFLOW_NOTIFY_TIMEOUT_SECONDS": "5",
          "APPEALFLOW_DELIVERY_BATCH_SIZE": "20", "APPEALFLOW_DELIVERY_RATE_LIMIT_EMAIL": "100000/second"}


def _deadlocks(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_force_next_flush()")
        return connection.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
                                  ).fetchone()[0]


def _outcome(url: str) -> tuple[dict, dict]:
    with session_scope(url) as session:
        statuses = dict(session.execute(select(Notification.status, func.count()).group_by(Notification.status)).all())
        sent_attempts = dict(session.execute(
            select(DeliveryAttempt.notification_id, func.count()).where(DeliveryAttempt.result == "sent")
            .group_by(DeliveryAttempt.notification_id)).all())
    return statuses, sent_attempts


def _all_sent(url: str, messages: int = MESSAGES):
    statuses, _ = _outcome(url)
    return statuses.get(NotificationStatus.sent, 0) == messages, statuses


def _attempts_of(url: str, pairs: list[tuple[str, str]]) -> list:
    """What the outbox recorded for messages that arrived more than once (for the failure message)."""
    with session_scope(url) as session:
        ids = session.execute(select(Notification.id).where(
            Notification.target.in_([f"mailto:{to}" for to, _ in pairs[:5]]))).scalars().all()
        return [(a.notification_id, a.result, a.error, a.at.isoformat()) for a in session.execute(
            select(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(ids))).scalars()]


def _start_delivery_workers(stack: Stack, count: int = 3) -> None:
    for n in range(count):
        stack.workers.append(stack._spawn(["worker", "--queues", "delivery", "--name", f"delivery-{n}"],
                                          f"delivery-{n}.log"))


def _deadlock_lines(stack: Stack) -> list[str]:
    return [line for text in stack.log_texts().values() for line in text.splitlines() if "deadlock" in line.lower()]


@on_postgresql
def test_three_delivery_workers_racing_their_own_renewals_send_every_message_once(stack, env, smtp, monkeypatch):
    for key, value in RACING.items():
        monkeypatch.setitem(stack.env, key, value)
    url = get_settings().sqlalchemy_url
    received_appeals(MESSAGES)  # one requester e-mail each
    before = _deadlocks(env["DATABASE_URL"])
    _start_delivery_workers(stack)
    wait_for(lambda: _all_sent(url), timeout=150, every=0.5, what="every message sent")

    stack.stop()  # a server process reports its deadlocks to the statistics by the time it exits
    statuses, sent_attempts = _outcome(url)
    received = smtp.counts()
    assert statuses == {NotificationStatus.sent: MESSAGES}
    twice = [pair for pair, n in received.items() if n > 1]
    assert len(received) == MESSAGES and not twice, f"{len(twice)} arrived twice: {_attempts_of(url, twice)}"
    assert set(sent_attempts.values()) == {1}, "one sent attempt per message"
    assert _deadlocks(env["DATABASE_URL"]) == before, "PostgreSQL detected a deadlock"
    assert not _deadlock_lines(stack), _deadlock_lines(stack)[:3]


def test_a_database_stopped_mid_delivery_repeats_at_most_what_was_in_flight(
        private_postgres, redis_url, prefect_api, smtp, tmp_path, monkeypatch):  # noqa: F811
    sa_url, env = outage_environment(private_postgres, redis_url, prefect_api, smtp, tmp_path, monkeypatch, {
        **RACING,
        # Claims renewed about once a second, and all lapsed during the 10 s outage.
        "APPEALFLOW_CLAIM_LEASE_SECONDS": "6"})
    stack = Stack(env, tmp_path / "logs")
    try:
        received_appeals(OUTAGE_MESSAGES)
        _start_delivery_workers(stack)
        wait_for(lambda: sum(smtp.counts().values()) >= OUTAGE_MESSAGES // 3, timeout=90, every=0.02,
                 what="a third of the messages out")
        private_postgres.stop()
        at_stop = sum(smtp.counts().values())
        time.sleep(1)  # sends under way when the database went finish now; then sending stops
        after_in_flight = sum(smtp.counts().values())
        # The rest of the 10 s outage, watching for a send (which would fail the test at once).
        outage_ends = time.monotonic() + 9
        while time.monotonic() < outage_ends and sum(smtp.counts().values()) == after_in_flight:
            time.sleep(0.1)
        during = sum(smtp.counts().values()) - after_in_flight
        private_postgres.start()
        engine_for(sa_url).dispose()
        wait_for(lambda: _all_sent(sa_url, OUTAGE_MESSAGES), timeout=150, every=0.5,
                 what="every message sent after the outage")

        statuses, sent_attempts = _outcome(sa_url)
        received = smtp.counts()
        twice = sum(1 for n in received.values() if n > 1)
        in_flight = after_in_flight - at_stop + 3 * int(RACING["APPEALFLOW_DELIVERY_BATCH_SIZE"])
        print(f"{OUTAGE_MESSAGES} messages; {at_stop} out when PostgreSQL stopped, {after_in_flight - at_stop} "
              f"finished in the next second, {during} sent during the rest of the 10 s outage; {twice} arrived twice "
              f"(bound: the {in_flight} that could have been in flight)")
        assert statuses == {NotificationStatus.sent: OUTAGE_MESSAGES}
        assert len(received) == OUTAGE_MESSAGES and max(received.values()) <= 2
        assert during == 0, "messages went out while their marks could not be written"
        assert twice <= in_flight
        with session_scope(sa_url) as session:
            recorded = repeated_sends(session)
        assert recorded == twice == sum(1 for n in sent_attempts.values() if n > 1), \
            "every message that arrived twice has two sent attempts"
        assert all(process.poll() is None for process in stack.workers), "a worker exited"
    finally:
        stack.stop()
        engine_for(get_settings().sqlalchemy_url).dispose()
        get_settings.cache_clear()
