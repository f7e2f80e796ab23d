"""The requester's loop, end to end with real delivery: messages in the requester's language with
local times and a link that opens their appeal, on e-mail and SMS; the department's notice with the
workbench link; rating, reopening, follow-up; the QR code; dead letters retried from the list."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import Role
from appealflow.models.appeals.tracking import EVENT_WORDS, STATUS_WORDS
from appealflow.models.city.department import Department
from appealflow.models.city.people import StaffUser, add_user
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import DeliveryAttempt, Notification
from appealflow.settings import get_settings
from tests.conftest import on_postgresql, on_sqlite
from tests.requester_receivers import Gateway, Mailbox
from tests.staff import PASSWORD, sign_in
from tests.test_dispatch_end_to_end import wait_for

NOISE = {"type": "complaint", "title": "工地夜间施工噪音扰民", "text": "每天晚上十一点以后还在施工",
         "location": {"district": "shinan", "street": "badaguan"}}
ENGLISH = {"type": "complaint", "title": "Construction noise at night",
           "text": "The building site works after eleven every night", "location": {"district": "shinan",
                                                                                       "street": "badaguan"}}
ZH_TIME = re.compile(r"\d{1,2}月\d{1,2}日 \d\d:\d\d")
EN_TIME = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d\d:\d\d")
LINK = re.compile(r"http://127\.0\.0\.1:\d+/appeals/[0-9A-Z-]+(?:/rating)?\?token=[A-Za-z0-9_=-]+"
                  r"|http://127\.0\.0\.1:\d+/s/[0-9A-Z]+")
SMS_SEGMENT = 70  # characters, once any is Chinese
SECRET_NOTE = "内部备注：刘科长说先拖一拖"
HANDLER_NAME = "handler-loop"


@pytest.fixture
def mailbox():
    with Mailbox() as box:
        yield box


@pytest.fixture
def gateway():
    running = Gateway().up()
    yield running
    running.down()


def _environment(stack, mailbox: Mailbox, gateway: Gateway, **extra: str) -> None:
    """Mail to our mailbox, SMS and every department's bot to the gateway, links to this API."""
    stack.env.update(APPEALFLOW_SMTP_URL=mailbox.apprise_url, APPEALFLOW_SMS_URL=gateway.url("sms/{phone}"),
                     APPEALFLOW_PUBLIC_URL=stack.api_url, **extra)
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(update(Department).values(notify=[gateway.url("departments")]))


def _links(text: str) -> list[str]:
    """The appeal's links in a message; a text message's short link as the tracking link it leads to."""
    return [_followed(link) if "/s/" in link else link for link in LINK.findall(text)]


def _followed(short: str) -> str:
    answer = httpx.get(short)
    assert answer.status_code == 303, (short, answer.status_code)
    return answer.headers["location"]


def _handler_for(api: httpx.Client, code: str) -> dict:
    with session_scope(get_settings().sqlalchemy_url) as session:
        department = session.execute(select(Appeal.department_code).where(Appeal.code == code)).scalar_one()
        name = f"{HANDLER_NAME}-{department}"
        if session.execute(select(StaffUser.id).where(StaffUser.username == name)).first() is None:
            add_user(session, username=name, password=PASSWORD, role=Role.handler, department_code=department,
                     display_name="刘科长")
    return sign_in(api, name)


def _act(api: httpx.Client, me: dict, code: str, action: str, **body) -> dict:
    version = api.get(f"/staff/appeals/{code}", headers=me).json()["version"]
    response = api.post(f"/staff/appeals/{code}/{action}", json={"version": version, **body}, headers=me)
    assert response.status_code == 200, (action, response.text)
    return response.json()


def _subjects(messages: list[dict], key: str = "subject") -> list[str]:
    return [m[key] for m in messages]


@on_postgresql
def test_three_requesters_hear_every_step_in_their_language_with_links_that_open_their_appeal(
        staff_api, stack, mailbox, gateway):
    api = staff_api
    _environment(stack, mailbox, gateway)
    stack.start_worker()
    filed = {
        "phone": api.post("/appeals", json=NOISE | {"requester": {"name": "王先生", "phone": "13800000001"}}),
        "email": api.post("/appeals", json=NOISE | {"requester": {"name": "李女士", "email": "li@example.test"}}),
        "english": api.post("/appeals", json=ENGLISH | {"requester": {"name": "Ann Lee", "email": "ann@example.test"}}),
    }
    assert {k: r.status_code for k, r in filed.items()} == {"phone": 201, "email": 201, "english": 201}
    code = {k: r.json()["code"] for k, r in filed.items()}
    assert filed["english"].json()["language"] == "en" and filed["phone"].json()["language"] == "zh"
    # The link intake returns opens the appeal as it stands (the README's example).
    opened = httpx.get(filed["phone"].json()["tracking_url"])
    assert opened.status_code == 200 and opened.json()["code"] == code["phone"]

    def inbox(who: str) -> list[dict]:
        if who == "phone":  # one segment each, no title: the text says it all
            return [{"subject": m["message"], "text": m["message"]} for m in gateway.at("/sms/13800000001")]
        return mailbox.to({"email": "li@example.test", "english": "ann@example.test"}[who])

    wait_for(lambda: all(len(inbox(w)) >= 2 for w in code), timeout=90, what="received and dispatched, everyone")
    for who in code:  # sent side by side, they may arrive in either order
        received, dispatched = sorted(inbox(who)[:2], key=lambda m: "dispatch" in m["subject"] or "派" in m["subject"])
        english = who == "english"
        if who == "phone":
            assert received["text"].startswith(f"【12345】您的诉求{code[who]}已受理")
            assert "已派至" in dispatched["text"]
            for sms in inbox(who)[:2]:
                assert len(sms["text"]) <= SMS_SEGMENT and "Your appeal" not in sms["text"], sms["text"]
        else:
            assert received["subject"] == (f"Your appeal {code[who]} was received" if english
                                           else f"您的诉求 {code[who]} 已受理")
            assert dispatched["subject"].startswith(f"Your appeal {code[who]} was dispatched to " if english
                                                    else f"您的诉求 {code[who]} 已派至")
            assert (EN_TIME if english else ZH_TIME).search(dispatched["text"]), dispatched["text"]
        assert "UTC" not in dispatched["text"]
        if english:
            assert not re.search(r"[\u4e00-\u9fff]", dispatched["subject"] + dispatched["text"])
        link = _links(received["text"])[0]
        view = httpx.get(link).json()["view"]  # followed as a citizen would: no sign-in
        assert view["code"] == code[who] and view["language"] == ("en" if english else "zh")
        assert [e["kind"] for e in view["timeline"]][:2] == ["received", "route"]
        assert view["timeline"][1]["department"] and view["deadlines"]
    # The department heard, with the workbench link and nobody's name or contact.
    notices = gateway.at("/departments")
    assert {c for c in code.values() if any(c in n["title"] for n in notices)} == set(code.values())
    for notice in notices:
        assert "/work/appeals/" in notice["message"] and "token=" not in notice["message"]
        for secret in ("13800000001", "li@example.test", "ann@example.test", "王先生", "李女士", "Ann Lee"):
            assert secret not in notice["title"] + notice["message"]

    # The department works all three; an internal note and a staff name stay inside.
    for who in code:
        me = _handler_for(api, code[who])
        _act(api, me, code[who], "accept")
        _act(api, me, code[who], "note", text=SECRET_NOTE)
        _act(api, me, code[who], "contact", reason="电话联系了 刘科长")
        if who == "email":  # asked for more; the requester answers through their link
            _act(api, me, code[who], "request_info", text="请提供具体楼号")
            asked = wait_for(lambda: [m for m in inbox("email") if "需要补充信息" in m["subject"]], timeout=60,
                             what="information requested")[0]
            answer = httpx.post(_links(asked["text"])[0].replace("?", "/information?"), json={"text": "3号楼"})
            assert answer.status_code == 200 and answer.json()["status"] == "in_progress"
        _act(api, me, code[who], "reply", text="已责令工地夜间停工。" if who != "english" else "Night work stopped.")

    wait_for(lambda: all(any("has a reply" in s or "已办结答复" in s for s in _subjects(inbox(w))) for w in code),
             timeout=60, what="the replies")
    rating_links = {}
    for who in code:
        reply = next(m for m in inbox(who) if "has a reply" in m["subject"] or "已办结答复" in m["subject"])
        # An e-mail carries the rating link; a text message its short link, to the page that rates.
        rating_links[who] = next((link for link in _links(reply["text"]) if "/rating?" in link),
                                 _links(reply["text"])[0].replace("?", "/rating?"))
        form = httpx.get(rating_links[who])
        assert form.status_code == 200 and form.json()["can_rate"], form.text
    rate = {"phone": ("satisfied", True), "email": ("unsatisfied", False), "english": ("basically_satisfied", True)}
    for who, (satisfaction, solved) in rate.items():
        rated = httpx.post(rating_links[who], json={"solved": solved, "satisfaction": satisfaction,
                                                    "comment": "谢谢"})
        assert rated.status_code == 200, rated.text
        again = httpx.post(rating_links[who], json={"solved": True, "satisfaction": "satisfied"})
        assert again.status_code == 409 and "already rated" in again.json()["detail"]
    # Unsatisfied: back to the same department under the reopened (重办) deadlines, not urgent wall-clock
    # ones, replied again, then closed.
    reopened = httpx.get(_links(inbox("email")[0]["text"])[0]).json()
    assert reopened["status"] == "dispatched" and reopened["priority"] == "normal"
    me = _handler_for(api, code["email"])
    assert api.get(f"/staff/appeals/{code['email']}", headers=me).json()["reopen_count"] == 1
    for action, body in (("accept", {}), ("contact", {}), ("reply", {"text": "已现场复查，工地已停工。"})):
        _act(api, me, code["email"], action, **body)
    wait_for(lambda: sum("已办结答复" in s for s in _subjects(inbox("email"))) == 2, timeout=60, what="second reply")
    second = [m for m in inbox("email") if "已办结答复" in m["subject"]][-1]
    assert httpx.post(next(u for u in _links(second["text"]) if "/rating?" in u),
                      json={"solved": True, "satisfaction": "satisfied"}).status_code == 200

    closed = {"phone": "已办结", "email": "已办结", "english": "is closed"}
    wait_for(lambda: all(sum(closed[w] in s and "答复" not in s for s in _subjects(inbox(w))) == 1 for w in code),
             timeout=60, what="the closing messages")
    expected = {"phone": ["已受理", "已派至", "已办结答复", "已办结"],
                "email": ["已受理", "已派至", "需要补充信息", "已办结答复", "已重新办理", "已办结答复", "已办结"],
                "english": ["was received", "was dispatched", "has a reply", "is closed"]}
    for who, steps in expected.items():
        subjects = _subjects(inbox(who))

        def step_of(subject: str, steps=steps) -> str:
            return max((step for step in steps if step in subject), key=len, default=subject)

        # One message per thing to know, none twice, nothing internal (the first two may swap places).
        assert sorted(map(step_of, subjects)) == sorted(steps), subjects
        for message in inbox(who):
            assert _links(message["text"]), message  # every one opens the appeal
            assert SECRET_NOTE not in message["text"] and "刘科长" not in message["text"]
    for letter in mailbox.letters:  # real HTML, escaped, with the QR code inline; and a plain-text part
        assert "<a href=" in letter["html"] and 'src="cid:qr@appealflow"' in letter["html"] and letter["text"]
        assert letter["images"]["qr@appealflow"].startswith(b"\x89PNG")
    for sms in inbox("phone"):  # every text message one segment, in the requester's language only
        assert len(sms["text"]) <= SMS_SEGMENT and "appeal" not in sms["text"].lower(), sms["text"]

    # The view: the whole life cycle in the requester's language, nothing internal.
    view = httpx.get(_links(inbox("email")[0]["text"])[0]).json()
    kinds = [e["kind"] for e in view["view"]["timeline"]]
    assert kinds == ["received", "route", "accept", "contact", "request_info", "info_received", "reply", "reopen",
                     "accept", "contact", "reply", "close"], kinds
    assert view["view"]["status_label"] == STATUS_WORDS["closed"]["zh"][0]
    assert SECRET_NOTE not in str(view) and "刘科长" not in str(view) and HANDLER_NAME not in str(view)
    english = httpx.get(_links(inbox("english")[0]["text"])[0]).json()["view"]
    assert english["timeline"][0]["label"] == EVENT_WORDS["received"]["en"] and EN_TIME.match(
        english["timeline"][0]["at_local"])

    # The QR code decodes, with a real decoder, to the tracking link; an SVG too.
    import zxingcpp
    from PIL import Image

    link = filed["english"].json()["tracking_url"]
    png = httpx.get(filed["english"].json()["qr_png_url"])
    assert png.headers["content-type"] == "image/png"
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))] == [link]
    svg = httpx.get(filed["english"].json()["qr_svg_url"])
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content

    # Code + the phone's last four digits open the same view, the requester masked; a wrong guess 404.
    by_phone = api.get(f"/appeals/{code['phone']}", params={"phone_last4": "0001"})
    assert by_phone.status_code == 200 and by_phone.json()["requester"]["phone"] == "138****0001"
    assert by_phone.json()["view"]["timeline"] == httpx.get(_links(inbox("phone")[0]["text"])[0]).json()[
        "view"]["timeline"]
    assert api.get(f"/appeals/{code['phone']}", params={"phone_last4": "0002"}).status_code == 404

    # A fourth requester withdraws before anyone answered; the department is told.
    late = api.post("/appeals", json=NOISE | {"requester": {"email": "zhou@example.test"}}).json()
    withdrawn = httpx.post(late["tracking_url"].replace("?", "/withdraw?"), json={"reason": "已自行解决"})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "closed"
    wait_for(lambda: any("已撤回" in s for s in _subjects(mailbox.to("zhou@example.test"))), timeout=60,
             what="the withdrawal message")


@on_sqlite
def test_a_gateway_down_for_a_while_gets_every_message_once_and_dead_letters_are_retried_from_the_list(
        staff_api, stack, mailbox, gateway):
    api = staff_api
    _environment(stack, mailbox, gateway, APPEALFLOW_DELIVERY_MAX_ATTEMPTS="6",
                 APPEALFLOW_DELIVERY_BACKOFF_SECONDS="0.3")
    gateway.down()  # the SMS gateway and the departments' bots
    stack.start_worker()
    first = [api.post("/appeals", json=NOISE | {"requester": {"phone": f"1390000000{n}"}}).json()["code"]
             for n in range(3)]
    url = get_settings().sqlalchemy_url

    def failed_attempts() -> int:
        with session_scope(url) as session:
            return len(session.execute(select(DeliveryAttempt).where(DeliveryAttempt.result == "failed")).all())

    wait_for(lambda: failed_attempts() >= 6, timeout=60, what="failed attempts while the gateway is down")
    gateway.up()

    def settled(statuses=("sent",)):
        with session_scope(url) as session:
            rows = session.execute(select(Notification.status).where(Notification.event != "legacy")).scalars().all()
        return rows if rows and set(rows) <= set(statuses) else None

    wait_for(lambda: settled() and len(gateway.received) >= 9, timeout=90, what="every message after the outage")
    for n in range(3):  # received + dispatched, once each
        assert len(gateway.at(f"/sms/1390000000{n}")) == 2
    with session_scope(url) as session:  # the handling department and any assisting one, once each
        notices = session.execute(select(Notification.id).where(Notification.recipient.like("department:%"))).all()
    assert len(gateway.at("/departments")) == len(notices) >= 3
    with session_scope(url) as session:
        attempts = session.execute(select(DeliveryAttempt)).scalars().all()
    assert {a.channel for a in attempts} == {"sms", "webhook"} and all(a.at for a in attempts)
    assert any(a.error for a in attempts if a.result == "failed")

    # Down for good: every attempt fails, the messages are dead-lettered and listed.
    gateway.down()
    second = api.post("/appeals", json=NOISE | {"requester": {"phone": "13900000009"}}).json()["code"]
    wait_for(lambda: len(api.get("/supervision/undelivered", headers=api.staff["supervisor"]).json()["rows"]) >= 3,
             timeout=90, what="dead letters")
    listed = api.get("/supervision/undelivered", headers=api.staff["supervisor"]).json()["rows"]
    assert {r["appeal"] for r in listed} == {second} and {r["status"] for r in listed} == {"failed"}
    assert all(r["attempts"] == 6 and r["last_error"] for r in listed)
    assert "13900000009" not in str(listed)  # why, and through which channel; not the citizen's number
    csv = api.get("/supervision/undelivered", params={"format": "csv"}, headers=api.staff["supervisor"])
    assert csv.content.decode("utf-8-sig").startswith("消息编号,受理编号,事件,接收方,渠道") and second in csv.text
    assert api.get("/supervision/undelivered", headers=api.staff["handler"]).status_code == 403
    gateway.up()
    for row in listed:
        assert api.post(f"/supervision/undelivered/{row['id']}/retry",
                        headers=api.staff["supervisor"]).status_code == 200
    wait_for(lambda: settled() and len(gateway.at("/sms/13900000009")) >= 2, timeout=60, what="retried delivery")
    assert len(gateway.at("/sms/13900000009")) == 2  # received and dispatched, once each
    assert api.get("/supervision/undelivered", headers=api.staff["supervisor"]).json()["rows"] == []
    assert len(first) == 3
