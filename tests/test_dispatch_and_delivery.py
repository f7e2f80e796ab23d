"""Dispatch runs as Prefect flow runs and is idempotent; delivery retries and never sends twice."""

from datetime import timedelta

from sqlalchemy import func, select, update

from appealflow.flows.dispatch import dispatch_appeals
from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.enums import AppealStatus, NotificationStatus
from appealflow.models.city.department import Department
from appealflow.models.routing.dispatch import claim_waiting
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.conftest import at_once, on_both
from tests.factories import received_appeals
from tests.test_dispatch_end_to_end import wait_for


def _claim_all(url: str) -> list[int]:
    with session_scope(url) as session:
        return claim_waiting(session, limit=1000, lease=timedelta(seconds=60), now=utcnow())


def _counts(url: str) -> tuple[int, int]:
    with session_scope(url) as session:
        events = session.execute(select(func.count()).select_from(AppealEvent)
                                 .where(AppealEvent.kind.in_(["route", "triage"]))).scalar_one()
        notes = session.execute(select(func.count()).select_from(Notification)
                                .where(Notification.event != "received")).scalar_one()  # said at intake
    return events, notes


@on_both
def test_a_batch_run_twice_dispatches_and_notifies_once(env):
    url = get_settings().sqlalchemy_url
    received_appeals(30)
    ids = _claim_all(url)
    first = dispatch_appeals(ids)
    assert first.dispatched + first.triaged == 30 and not first.failed
    once = _counts(url)
    second = dispatch_appeals(ids)
    assert second.dispatched == second.triaged == second.notifications == 0
    assert second.unchanged == 0  # nothing left in `received` to decide on
    assert _counts(url) == once == (30, first.notifications)


@on_both
def test_two_flow_runs_racing_on_one_batch_dispatch_it_once(env):
    url = get_settings().sqlalchemy_url
    received_appeals(40)
    ids = _claim_all(url)
    results = at_once(lambda: dispatch_appeals(ids))
    assert sum(r.dispatched + r.triaged for r in results) == 40
    events, _ = _counts(url)
    assert events == 40


def test_one_bad_appeal_does_not_fail_its_batch(env):
    url = get_settings().sqlalchemy_url
    received_appeals(9)
    with session_scope(url) as session:
        # A routable appeal whose priority no deadline policy covers: its decision raises.
        bad = session.execute(select(Appeal.id).order_by(Appeal.id).limit(1)).scalar_one()
        session.execute(update(Appeal).where(Appeal.id == bad).values(priority="sideways"))
    summary = dispatch_appeals(_claim_all(url))
    assert len(summary.failed) == 1
    assert summary.dispatched + summary.triaged == 8
    with session_scope(url) as session:
        assert session.get(Appeal, bad).status == AppealStatus.received  # left for a later attempt


def test_delivery_retries_with_backoff_and_sends_once(stack, http_receiver):
    url = get_settings().sqlalchemy_url
    http_receiver.fail_first = 2
    with session_scope(url) as session:
        session.execute(update(Department).values(notify=[http_receiver.url("departments")]))
    received_appeals(1)  # a construction-noise complaint: one department, one requester
    stack.start_worker()

    def settled():
        with session_scope(url) as session:
            rows = session.execute(select(Notification)).scalars().all()
        return rows if rows and all(r.status == NotificationStatus.sent for r in rows) else None

    rows = wait_for(settled, timeout=60, what="delivery after retries")
    to_department = [r for r in rows if r.target.startswith("json://")]
    assert len(to_department) >= 1
    assert sum(r.attempts - 1 for r in to_department) == 2  # the two refusals were retried
    assert http_receiver.attempts == len(to_department) + 2
    assert len(http_receiver.received) == len(to_department)
    assert {m["title"] for m in http_receiver.received} == {r.subject for r in to_department}


def test_a_requester_with_no_reachable_channel_is_recorded_not_dropped(stack):
    url = get_settings().sqlalchemy_url
    received_appeals(1)
    with session_scope(url) as session:
        session.execute(update(Appeal).values(requester_email=None))  # phone only, no SMS gateway set
    stack.start_worker()

    def to_requester():
        with session_scope(url) as session:
            row = session.execute(select(Notification).where(  # "received" was written before the e-mail went
                Notification.recipient == "requester", Notification.event != "received")).scalar()
        settled = row is not None and row.status not in (NotificationStatus.pending, NotificationStatus.sending)
        return row if settled else None

    row = wait_for(to_requester, timeout=60, what="the requester's notification to settle")
    assert row.target == "sms:13900000000"
    assert row.status == NotificationStatus.undeliverable and row.attempts == 1  # no retry can mend it
    assert "SMS" in row.last_error


def test_the_lazy_ssl_context_apprise_gets_still_configures_tls():
    import ssl

    from apprise.plugins.email import smtp

    import appealflow.notifications.delivery  # noqa: F401 - installs the lazy context

    context = smtp.ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert context._real().verify_mode == ssl.CERT_NONE and callable(context.wrap_socket)
    assert smtp.ssl.create_default_context()._real().verify_mode == ssl.CERT_REQUIRED  # each its own
    assert ssl.create_default_context is not smtp.ssl.create_default_context
