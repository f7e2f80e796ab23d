"""Intake over HTTP: validation, idempotent retries, and tracking with the access token."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal, AppealEvent, IdempotencyKey
from appealflow.models.appeals.intake import NewAppeal, receive, receive_once
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.conftest import on_both

GOOD = {
    "type": "complaint", "title": "夜间施工噪音", "text": "工地每天夜间施工，噪音扰民。",
    "location": {"district": "shinan", "street": "badaguan", "address": "八大关某小区"},
    "requester": {"name": "王小明", "phone": "13800001111", "email": "wang@example.test"},
}


def appeal_count() -> int:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return session.execute(select(func.count()).select_from(Appeal)).scalar_one()


@pytest.fixture
def api(stack) -> httpx.Client:
    with httpx.Client(base_url=stack.start_api(), timeout=30) as client:
        yield client


def test_a_valid_appeal_is_stored_with_its_received_event(api):
    response = api.post("/appeals", json=GOOD)
    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "received" and created["access_token"]
    tracked = api.get(f"/appeals/{created['code']}", params={"token": created["access_token"]})
    assert tracked.status_code == 200
    body = tracked.json()
    assert body["requester"]["phone"] == "13800001111"  # the requester sees their own data
    assert [e["kind"] for e in body["history"]] == ["received"]
    assert body["history"][0]["actor"] == "requester"


BAD_INPUT = [
    ({"type": "rant"}, ["body", "type"]),
    ({"title": ""}, ["body", "title"]),
    ({"text": "长" * 5001}, ["body", "text"]),
    ({"requester": {"phone": "call me maybe"}}, ["body", "requester", "phone"]),
    ({"requester": {"email": "not-an-address"}}, ["body", "requester", "email"]),
    ({"requester": {"name": "无联系方式"}}, ["body", "requester"]),
    ({"category": "no_such_category"}, ["body", "category"]),
    ({"location": {"district": "Shinan District!"}}, ["body", "location", "district"]),
    ({"surprise": 1}, ["body", "surprise"]),
]


def test_bad_input_gets_422_naming_the_field(api):
    for change, field in BAD_INPUT:
        response = api.post("/appeals", json={**GOOD, **change})
        assert response.status_code == 422, response.text
        assert field in [error["loc"] for error in response.json()["detail"]], change
    assert appeal_count() == 0


def test_an_oversized_body_is_refused_before_parsing(api):
    response = api.post("/appeals", content=b"{" + b" " * 70_000 + b"}",
                        headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_retry_with_the_same_key_returns_the_same_appeal(api):
    first = api.post("/appeals", json=GOOD, headers={"Idempotency-Key": "retry-1"})
    again = api.post("/appeals", json=GOOD, headers={"Idempotency-Key": "retry-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert appeal_count() == 1


def test_the_same_key_with_another_body_is_refused(api):
    assert api.post("/appeals", json=GOOD, headers={"Idempotency-Key": "k-2"}).status_code == 201
    other = api.post("/appeals", json={**GOOD, "title": "另一件事"}, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert appeal_count() == 1


@on_both
def test_concurrent_duplicates_create_one_appeal(api):
    def post(_):
        return api.post("/appeals", json=GOOD, headers={"Idempotency-Key": "burst-3"})

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(post, range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["code"] for r in responses}) == 1
    assert appeal_count() == 1
    with session_scope(get_settings().sqlalchemy_url) as session:
        assert session.execute(select(func.count()).select_from(AppealEvent)).scalar_one() == 1


def test_a_hotline_appeal_records_the_signed_in_operator(staff_api):
    body = {**GOOD, "channel": "hotline", "operator_id": "someone-else"}
    created = staff_api.post("/appeals", json=body, headers=staff_api.staff["operator"]).json()
    with session_scope(get_settings().sqlalchemy_url) as session:
        event = session.execute(select(AppealEvent)).scalar_one()
        appeal = session.execute(select(Appeal)).scalar_one()
    assert event.actor == "operator:operator" and appeal.operator_id == "operator"  # the account, not the body
    history = staff_api.get(f"/appeals/{created['code']}", headers={"X-Access-Token": created["access_token"]})
    assert history.json()["history"][0]["actor"] == "operator"  # staff are named by role only


def test_tracking_refuses_a_wrong_token_like_an_unknown_code(api):
    created = api.post("/appeals", json=GOOD).json()
    wrong = api.get(f"/appeals/{created['code']}", params={"token": "x" * 32})
    unknown = api.get("/appeals/261127-AAAAAAA", params={"token": created["access_token"]})
    missing = api.get(f"/appeals/{created['code']}")
    assert wrong.status_code == unknown.status_code == missing.status_code == 404
    assert wrong.json() == unknown.json()


@on_both
def test_intake_writes_the_appeal_its_event_message_and_key_naming_its_id(database_url):
    """The rows intake writes in one go (one statement on PostgreSQL), each naming the appeal's real
    id, also for two appeals in one transaction; a retried key returns the first appeal."""
    url = database_url
    new = NewAppeal(channel="web", appeal_type="complaint", priority="normal", title="夜间施工噪音", text="噪音扰民",
                    category_code="urban_management", district="shinan", street="badaguan",
                    requester_email="wang@example.test")
    with session_scope(url) as session:
        first, _ = receive_once(session, new, now=utcnow(), actor="requester", idempotency_key="rows-1")
        second = receive(session, replace(new, requester_email=None, requester_phone="13800001111"),
                         now=utcnow(), actor="requester")
    with session_scope(url) as session:
        again, created = receive_once(session, new, now=utcnow(), actor="requester", idempotency_key="rows-1")
    assert not created and again.id == first.id and again.code == first.code
    with session_scope(url) as session:
        for appeal, target in ((first, "mailto:wang@example.test"), (second, "sms:13800001111")):
            stored = session.get(Appeal, appeal.id)
            assert stored is not None and stored.code == appeal.code and stored.category_code == "urban_management"
            event = session.execute(select(AppealEvent).where(AppealEvent.appeal_id == appeal.id)).scalar_one()
            assert (event.kind, event.actor, event.detail) == ("received", "requester", {"channel": "web"})
            note = session.execute(select(Notification).where(Notification.appeal_id == appeal.id)).scalar_one()
            assert note.dedupe_key == f"{appeal.id}:received:{appeal.id}:v1:requester:{target}"
            assert (note.target, note.status, note.facts["code"]) == (target, "pending", appeal.code)
        assert session.get(IdempotencyKey, "rows-1").appeal_id == first.id
