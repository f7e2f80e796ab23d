"""Appeals with no contact (anonymous) from the JSON API and the web form, the privacy notice agreed
to and recorded, a name kept from the department, and what the confirmation page promises."""

import re

from sqlalchemy import select

from appealflow.models.appeals.access import WITHHELD
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.privacy import NOTICE_VERSION
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.staff import HOME
from tests.test_dispatch_end_to_end import wait_for
from tests.test_pages import Form, page

GOOD = {
    "type": "complaint", "title": "夜间施工噪音", "text": "工地每天夜间施工，噪音扰民。",
    "location": {"district": "shinan", "street": "badaguan"},
}


def _stored(code: str) -> Appeal:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return session.execute(select(Appeal).where(Appeal.code == code)).scalar_one()


def _audiences(code: str) -> set[str]:
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == code)).scalar_one()
        return set(session.execute(select(Notification.audience).where(Notification.appeal_id == appeal_id)).scalars())


def test_an_anonymous_appeal_is_filed_told_to_nobody_and_counted_apart(staff_api, stack):
    api = staff_api
    stack.start_worker()
    refused = api.post("/appeals", json={**GOOD, "requester": {}})
    assert refused.status_code == 422 and "匿名" in refused.text  # no contact, not said anonymous: refused
    both = api.post("/appeals", json={**GOOD, "requester": {"phone": "13800001111"}, "anonymous": True})
    assert both.status_code == 422 and "anonymous" in both.text
    made = api.post("/appeals", json={**GOOD, "requester": {"name": "市民"}, "anonymous": True})
    assert made.status_code == 201, made.text
    code, token = made.json()["code"], made.json()["access_token"]
    assert api.get(f"/appeals/{code}", params={"token": token}).json()["anonymous"] is True
    wait_for(lambda: _stored(code).status == "dispatched", timeout=60, what="dispatch")
    assert "requester" not in _audiences(code) and "department" in _audiences(code)
    with session_scope(get_settings().sqlalchemy_url) as session:
        assert session.execute(select(Notification.id).where(Notification.status == "undeliverable")).first() is None
    department = _stored(code).department_code
    rows = api.get("/supervision/rates", headers=api.staff["supervisor"]).json()["rows"]
    assert next(r for r in rows if r["department"] == department)["anonymous"] == 1


def test_the_privacy_notice_is_recorded_and_a_withheld_name_stays_from_the_department(staff_api):
    api = staff_api
    notice = api.get("/reference/privacy").json()
    assert notice["version"] == NOTICE_VERSION and "承办部门" in notice["text"]["zh"] and notice["text"]["en"]
    assert api.post("/appeals", json={**GOOD, "requester": {"phone": "13800001111"},
                                      "name_withheld": True}).status_code == 422  # no name to withhold
    made = api.post("/appeals", json={**GOOD, "requester": {"name": "周秘密", "phone": "13800007777"},
                                      "name_withheld": True, "privacy_consent": True}).json()
    stored = _stored(made["code"])
    assert stored.privacy_notice == NOTICE_VERSION and stored.name_withheld
    with session_scope(get_settings().sqlalchemy_url) as session:  # as if dispatched to the handler's department
        session.get(Appeal, stored.id).department_code = HOME
        session.get(Appeal, stored.id).status = "dispatched"
    seen = api.get(f"/staff/appeals/{made['code']}", headers=api.staff["handler"]).json()["requester"]
    assert seen["name"] == WITHHELD and seen["phone"] == "13800007777"  # it can still reply
    found = api.get("/queue", params={"q": "周秘密"}, headers=api.staff["handler"]).json()["items"]
    assert made["code"] not in [i["code"] for i in found]
    assert "周秘密" not in api.get(f"/staff/appeals/{made['code']}", headers=api.staff["handler"]).text


def test_the_confirmation_says_what_comes_next_and_where_messages_will_come(stack):
    import httpx

    with httpx.Client(base_url=stack.start_api(), timeout=30, follow_redirects=True) as anon:
        form = Form(page(anon, "/file")).hidden | {"privacy": "on", "type": "complaint", "title": "路灯不亮",
                                                   "text": "小区门口路灯坏了一个月", "district": "shinan",
                                                   "street": "badaguan"}
        told = anon.post("/file", data={**form, "email": "zhao@example.test"})
        assert told.status_code == 200 and "/filed" in str(told.url)
        assert "z***@example.test" in told.text and "zhao@example.test" not in told.text
        assert re.search(r'id="next-(expected|due|triage)"', told.text)
        assert re.search(r"\d+月\d+日 \d\d:\d\d前办结", told.text)  # by when, in local time
        typed = {k: v for k, v in form.items() if k not in ("csrf", "idempotency_key")}
        form = Form(page(anon, "/file")).hidden | typed  # a fresh form: a new idempotency key
        anonymous = anon.post("/file", data={**form, "anonymous": "on", "phone": "13800001111"})
        assert anonymous.status_code == 200 and 'id="next-anonymous"' in anonymous.text
        code = re.search(r'id="tracking-code">([^<]+)<', anonymous.text).group(1)
        stored = _stored(code)
        assert stored.anonymous and stored.requester_phone is None  # the typed phone was not sent
        assert stored.privacy_notice == NOTICE_VERSION
