"""The handler's desk through the HTTP API: search by phone, name and code within what access allows;
the queue by the nearest running deadline; review of replies (approve sends, reject returns with the
reason); ownership (assign, take) and its refusals; canned replies; the 重办 deadlines of a reopening
in the night; contact records."""

import random
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from appealflow.api.tracking import REQUESTER
from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.lifecycle import Action
from appealflow.models.appeals.steps import ActionInput
from appealflow.models.appeals.tracking import access_token
from appealflow.models.appeals.workbench import act
from appealflow.models.clocks.calendar import load_calendar
from appealflow.models.clocks.deadlines import Duration
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.staff import ELSEWHERE, appeal_in

CITY = ZoneInfo("Asia/Shanghai")


def _phone() -> str:
    """A phone number no other appeal of the test has, so a search by its tail finds only ours."""
    return "139" + "".join(random.choices("0123456789", k=8))


def _queue(api, who: str, **params) -> list[dict]:
    answer = api.get("/queue", params=params, headers=api.staff[who])
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def _detail(api, who: str, code: str) -> dict:
    answer = api.get(f"/staff/appeals/{code}", headers=api.staff[who])
    assert answer.status_code == 200, answer.text
    return answer.json()


def _do(api, who: str, code: str, action: str, **body):
    version = _detail(api, "department_head" if who == "other_handler" else who, code)["version"]
    return api.post(f"/staff/appeals/{code}/{action}", json={"version": version, **body}, headers=api.staff[who])


def test_a_search_by_the_last_four_phone_digits_finds_it_for_its_department_and_for_no_other(staff_api):
    api = staff_api
    phone = _phone()
    code, version = appeal_in("dispatched", phone=phone)
    # The other department assists, so it may see the appeal (masked), but not find it by the number.
    assert api.post(f"/staff/appeals/{code}/add_assist", json={"version": version, "department": ELSEWHERE},
                    headers=api.staff["handler"]).status_code == 200
    for q in (phone[-4:], phone, code, code[-5:], "赵小明"):
        found = [i["code"] for i in _queue(api, "handler", q=q)]
        assert code in found, q
    for q in (phone[-4:], phone, "赵小明"):
        assert code not in [i["code"] for i in _queue(api, "other_handler", q=q)], q
    assert code in [i["code"] for i in _queue(api, "other_handler", q=code)]  # the code is no secret to it
    shown = _detail(api, "other_handler", code)["requester"]
    assert phone not in str(shown) and "赵小明" not in str(shown)  # masked where it is shown
    # Three digits are too few to mean a phone number: they match nothing by phone.
    assert code not in [i["code"] for i in _queue(api, "handler", q=phone[-3:])]


def test_the_queue_puts_the_nearest_running_deadline_first(staff_api):
    """Accept due in 26 minutes comes before resolve due in 11 hours, whichever was made first; a
    clock that stopped (accepted already) does not count."""
    api = staff_api
    phone = _phone()
    later, _ = appeal_in("accepted", phone=phone, due_in=timedelta(hours=11), accept_in=timedelta(minutes=5))
    sooner, _ = appeal_in("dispatched", phone=phone, due_in=timedelta(days=5), accept_in=timedelta(minutes=26))
    items = _queue(api, "handler", q=phone[-4:])
    assert [i["code"] for i in items] == [sooner, later]
    dues = [datetime.fromisoformat(i["next_due_at"]) for i in items]
    assert dues == sorted(dues)
    assert timedelta(minutes=20) < dues[0] - datetime.now(UTC) < timedelta(minutes=27)


def _review_on(api) -> None:
    answer = api.put("/staff/department/review-replies", json={"review_replies": True},
                     headers=api.staff["department_head"])
    assert answer.status_code == 200, answer.text


def _requester_replies(code: str) -> int:
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == code)).scalar_one()
        return len(session.execute(select(Notification.id).where(
            Notification.appeal_id == appeal_id, Notification.event == "replied",
            Notification.audience == "requester")).all())


def test_a_rejected_reply_goes_back_with_the_reason_and_an_approved_one_reaches_the_requester(staff_api):
    api = staff_api
    code, _ = appeal_in("in_progress")
    assert api.put("/staff/department/review-replies", json={"review_replies": True},
                   headers=api.staff["handler"]).status_code == 403  # a head's setting
    _review_on(api)
    assert _do(api, "handler", code, "reply", text="已处理。").status_code == 200
    assert _detail(api, "handler", code)["status"] == "reviewing"
    assert _requester_replies(code) == 0
    # The citizen sees it in hand, never the draft.
    token = access_token(get_settings().signing_key(), code)
    tracked = api.get(f"/appeals/{code}", params={"token": token})
    assert tracked.status_code == 200 and "已处理。" not in tracked.text

    assert _do(api, "handler", code, "approve_reply").status_code == 403  # not the handler's to approve
    assert _do(api, "department_head", code, "reject_reply").status_code == 422  # a reason is required
    assert _do(api, "department_head", code, "reject_reply", reason="请写明维修时间和联系人").status_code == 200
    back = _detail(api, "handler", code)
    assert back["status"] == "in_progress" and _requester_replies(code) == 0
    said = back["history"][-1]
    assert said["kind"] == "reject_reply"
    assert "请写明维修时间和联系人" in said["text"]["value"]
    assert "退回" in said["sentence"]["zh"] and said["sentence"]["en"]

    final = "已于12月5日更换灯泡，联系人王工。"
    assert _do(api, "handler", code, "reply", text="已更换灯泡。").status_code == 200
    for_review = _detail(api, "department_head", code)
    assert for_review["reply_for_review"]["result"] == "已更换灯泡。"
    waiting = [i for i in _queue(api, "department_head", status="reviewing") if i["code"] == code]
    assert waiting and waiting[0]["waiting_since"]
    assert _do(api, "department_head", code, "approve_reply", text=final).status_code == 200  # edited by the head
    assert _detail(api, "handler", code)["status"] == "replied"
    assert _requester_replies(code) == 1
    with session_scope(get_settings().sqlalchemy_url) as session:
        facts = session.execute(select(Notification.facts).where(Notification.event == "replied",
                                                                 Notification.audience == "requester")).scalars().all()
    assert any(final in str(f) for f in facts)  # the head's words, not the handler's draft


def test_a_head_assigns_a_handler_takes_and_the_refusals(staff_api, stack):
    api = staff_api
    code, _ = appeal_in("dispatched")
    assert _do(api, "handler", code, "assign", assignee="handler").status_code == 403  # a head's to give
    assert _do(api, "department_head", code, "assign", assignee="other_handler").status_code == 422  # not ours
    assert _do(api, "department_head", code, "assign", assignee="nobody").status_code == 422
    assert _do(api, "department_head", code, "assign", assignee="handler").status_code == 200
    assert _detail(api, "handler", code)["assignee"] == "handler"
    assert code in [i["code"] for i in _queue(api, "handler", owner="mine")]
    assert code not in [i["code"] for i in _queue(api, "handler", owner="unassigned")]
    assert code not in [i["code"] for i in _queue(api, "department_head", owner="mine")]
    refused = _do(api, "department_head", code, "take")
    assert refused.status_code in (409, 422) and "assign" in refused.text  # taken already: reassign instead
    other, _ = appeal_in("dispatched")
    assert other in [i["code"] for i in _queue(api, "handler", owner="unassigned")]
    assert _do(api, "handler", other, "take").status_code == 200
    assert _detail(api, "handler", other)["assignee"] == "handler"
    assert api.get("/queue", params={"owner": "everyone"}, headers=api.staff["handler"]).status_code == 422


def test_canned_replies_are_a_heads_with_known_placeholders_only(staff_api):
    api = staff_api
    head, handler = api.staff["department_head"], api.staff["handler"]
    assert api.post("/staff/canned-replies", json={"title": "t", "body": "您好"}, headers=handler).status_code == 403
    unknown = api.post("/staff/canned-replies", json={"title": "t", "body": "您好，{phone}"}, headers=head)
    assert unknown.status_code == 422 and "phone" in unknown.text
    made = api.post("/staff/canned-replies", json={"title": "已修复", "body": "关于“{title}”（{code}），已修复。"},
                    headers=head)
    assert made.status_code == 201, made.text
    assert api.delete(f"/staff/canned-replies/{made.json()['id']}", headers=handler).status_code == 403
    code, _ = appeal_in("in_progress")
    canned = _detail(api, "handler", code)["canned_replies"]
    filled = next(c for c in canned if c["title"] == "已修复")["text"]
    assert filled == f"关于“路灯不亮”（{code}），已修复。"
    other = api.get("/staff/canned-replies", headers=api.staff["other_handler"]).json()
    assert "已修复" not in [c["title"] for c in other]  # one department's, not another's


def test_a_contact_record_keeps_method_outcome_time_and_note_and_refuses_a_future_time(staff_api):
    api = staff_api
    code, _ = appeal_in("in_progress")
    time.sleep(1.2)  # a whole second after it came in: the form gives minutes, the API seconds
    at = datetime.now(CITY).replace(microsecond=0)
    before = _do(api, "handler", code, "record_contact", method="phone", outcome="reached",
                 contacted_at=(at - timedelta(hours=1)).isoformat())
    assert before.status_code == 422 and "contacted_at" in before.text  # before the appeal came in
    assert _do(api, "handler", code, "record_contact", method="carrier pigeon", outcome="reached").status_code == 422
    future = _do(api, "handler", code, "record_contact", method="phone", outcome="reached",
                 contacted_at=(datetime.now(CITY) + timedelta(hours=2)).isoformat())
    assert future.status_code == 422 and "contacted_at" in future.text
    assert _do(api, "handler", code, "record_contact", method="visit", outcome="no_answer",
               contacted_at=at.isoformat(), text="上门无人，留下联系卡").status_code == 200
    said = _detail(api, "handler", code)["history"][-1]
    assert said["kind"] == "record_contact"
    assert "上门" in said["sentence"]["zh"] and at.strftime("%H:%M") in said["sentence"]["zh"]
    assert said["text"]["value"] == "上门无人，留下联系卡"


def test_a_reopening_at_23_37_gets_working_day_limits_not_the_nights_minutes(database_url):
    """重办 after a rating late at night: an urgent appeal's wall-clock minutes would fall due at
    00:07; the reopen policy gives working days, from the next working morning."""
    settings = get_settings()
    code, _ = appeal_in("replied")
    rated_at = datetime(2026, 12, 3, 23, 37, tzinfo=CITY)  # a Thursday
    with session_scope(settings.sqlalchemy_url) as session:
        session.execute(update(Appeal).where(Appeal.code == code).values(priority="urgent"))
    with session_scope(settings.sqlalchemy_url) as session:
        appeal = session.execute(select(Appeal).where(Appeal.code == code)).scalar_one()
        calendar = load_calendar(session, hours=settings.working_hours, zone=settings.timezone)
        act(session, REQUESTER, appeal, Action.reopen,
            ActionInput(version=appeal.version, solved=False, satisfaction="unsatisfied"),
            now=rated_at.astimezone(UTC), calendar=calendar)
        assert appeal.status == "dispatched" and appeal.reopen_count == 1
        accept = appeal.accept_due_at.astimezone(CITY)
        assert accept == calendar.add(rated_at, Duration(1, "d"), working=True).astimezone(CITY)
        assert accept - rated_at > timedelta(hours=8)  # not 30 minutes of night
        assert calendar.is_working_time(accept - timedelta(minutes=1))  # it falls due in office hours
        assert appeal.resolve_due_at > appeal.accept_due_at
        assert appeal.next_due_at == appeal.accept_due_at  # the queue's sort key: the nearest running clock
