"""The handler's desk in Debian's Chromium, in Chinese: a department head turns review on, writes a
canned reply and assigns an appeal; the handler hears of it by e-mail, finds it under "mine", inserts
the canned reply, edits it and sends it for review; the requester hears nothing until the head
approves it. The history reads as sentences. And the page prints as one A4 work order."""

import re
import time

from sqlalchemy import select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import Role
from appealflow.models.city.people import add_user
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.runtime.services import wait_until
from appealflow.settings import get_settings
from tests.browser.steps import sign_in
from tests.conftest import on_sqlite
from tests.staff import HOME, PASSWORD, appeal_in

REQUESTER = "zhao@example.test"  # appeal_in's requester
HANDLER_MAIL = "desk-handler@example.test"
EDIT = "如仍有问题，请再次来电。"
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
ROLE_PREFIX = re.compile(r"\b(handler|requester|department_head|dispatcher|operator|system|rule|model):")


def _open(page, action: str) -> None:
    if page.locator(f"#action-{action}").get_attribute("open") is None:
        page.locator(f"#action-{action} summary").click()


def _replies_to_requester(code: str) -> int:
    """Messages for the requester about the reply, in the outbox (written or not yet sent)."""
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == code)).scalar_one()
        rows = session.execute(select(Notification.event, Notification.target)
                               .where(Notification.appeal_id == appeal_id)).all()
    return sum(1 for event, target in rows if event == "replied" and REQUESTER in target)


def _history_reads_as_sentences(page) -> str:
    text = page.locator("#history").inner_text()
    assert text.strip()
    for bad in ("_", "[", "]", "{", "}"):
        assert bad not in text, (bad, text)
    assert not ISO_TIME.search(text), text
    assert not ROLE_PREFIX.search(text), text
    return text


@on_sqlite
def test_assigned_canned_reviewed_reply_reaches_the_requester_only_when_approved(browser, stack, smtp, tmp_path):
    stack.start_worker()
    base = stack.start_api()
    with session_scope(get_settings().sqlalchemy_url) as session:
        add_user(session, username="desk_handler", password=PASSWORD, role=Role.handler, department_code=HOME,
                 display_name="王小红", notify=f"mailto:{HANDLER_MAIL}")
    code, _ = appeal_in("in_progress")
    errors: list[str] = []

    def page_in(context):
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        return page

    def context():
        made = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base,
                                   viewport={"width": 1280, "height": 900})
        made.set_default_timeout(15_000)
        return made

    # The head: review on, a canned reply with a placeholder, then the appeal assigned.
    head = page_in(context())
    sign_in(head, "department_head")
    head.click("#nav-canned")
    head.check("#review-replies")
    head.click("#save-review")
    head.wait_for_selector("#saved")
    assert head.locator("#review-replies").is_checked()
    head.fill("#canned-title", "路灯已修复")
    head.fill("#canned-body", "您好，关于“{title}”，我们已安排维修，路灯已恢复照明。")
    head.click("#save-canned")
    head.wait_for_selector("#saved")
    assert "路灯已修复" in head.locator("#canned-list").inner_text()
    head.goto(f"/work/appeals/{code}")
    _open(head, "assign")
    head.select_option("#assign-assignee", "desk_handler")
    head.click("#do-assign")
    head.wait_for_selector("#done")
    assert "王小红" in head.locator("#assignee").inner_text()

    # The handler hears of it on the channel their account names, and finds it under "mine".
    wait_until(lambda: smtp.to(HANDLER_MAIL), timeout=60, what="the assignment notice")
    subject, text = smtp.to(HANDLER_MAIL)[0]
    assert code in subject + text and f"/work/appeals/{code}" in text
    desk = page_in(context())
    sign_in(desk, "desk_handler")
    desk.click("#owner-mine")
    desk.wait_for_url(re.compile(r"owner=mine"))
    assert desk.locator(f"#queue tr[data-code='{code}']").count() == 1
    desk.get_by_role("link", name=code).click()
    _open(desk, "reply")
    assert "审核" in desk.locator("#do-reply").inner_text()  # the label says where the reply goes
    desk.select_option("#reply-canned", label="路灯已修复")
    desk.click("#insert-canned")
    inserted = desk.locator("#reply-text").input_value()
    assert "路灯不亮" in inserted and "{title}" not in inserted  # the placeholder filled in
    desk.locator("#reply-text").press("End")
    desk.locator("#reply-text").type(EDIT)
    desk.click("#do-reply")
    desk.wait_for_selector("#done")
    assert desk.locator("#appeal-status").get_attribute("data-status") == "reviewing"

    # Nothing for the requester while the reply waits, though the outbox and relay work (the
    # notice above came through them): a few seconds of both watched.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert _replies_to_requester(code) == 0
        assert not [s for s, _ in smtp.to(REQUESTER) if "答复" in s]
        time.sleep(0.3)

    # The head's queue shows it waiting for review, for how long; approving sends it.
    head.goto("/work")
    row = head.locator(f"#queue tr[data-code='{code}']")
    assert "待审核" in row.inner_text() or "审核" in row.inner_text()
    assert row.locator(".tag.waiting").count() == 1
    head.goto(f"/work/appeals/{code}")
    assert EDIT in head.locator("#review-text").inner_text()
    _open(head, "approve_reply")
    assert EDIT in head.locator("#approve_reply-text").input_value()  # the head may still edit it
    head.click("#do-approve_reply")
    head.wait_for_selector("#done")
    assert head.locator("#appeal-status").get_attribute("data-status") == "replied"
    wait_until(lambda: [t for s, t in smtp.to(REQUESTER) if EDIT in t], timeout=60, what="the reply e-mail")

    history = _history_reads_as_sentences(head)
    assert "王小红" in history and "审核" in history
    head.screenshot(path=str(tmp_path / "head-approved.png"), full_page=True)
    assert not errors, errors


@on_sqlite
def test_the_appeal_page_prints_as_one_a4_work_order(browser, stack, tmp_path):
    """A typical appeal (accepted, contacted, a note, a reply on the way) prints on one A4 page, with
    the work order's heading and QR, and none of the screen's forms."""
    base = stack.start_api()
    code, version = appeal_in("in_progress")
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base)
    context.set_default_timeout(15_000)
    page = context.new_page()
    sign_in(page, "handler")
    for body in ({"method": "phone", "outcome": "reached", "text": "已电话联系诉求人，约定明日上午现场查看。"},
                 {"method": "visit", "outcome": "reached", "text": "现场查看：八大关小区门口路灯灯泡损坏。"}):
        page.goto(f"/work/appeals/{code}")
        _open(page, "record_contact")
        page.select_option("#record_contact-method", body["method"])
        page.fill("#record_contact-note", body["text"])
        page.click("#do-record_contact")
        page.wait_for_selector("#done")
    page.goto(f"/work/appeals/{code}")
    _history_reads_as_sentences(page)
    page.emulate_media(media="print")
    assert page.locator("#work-order-head").is_visible()
    assert "工单" in page.locator("#work-order-head").inner_text()
    assert page.locator(".actions").is_hidden() and page.locator("header.top").is_hidden()
    qr = page.locator(".work-order-qr")
    assert qr.get_attribute("src").startswith("data:image/png;base64,")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    pdf = page.pdf(format="A4", print_background=False, prefer_css_page_size=True)
    (tmp_path / "work-order.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    assert pages == 1, f"the work order printed on {pages} pages"
    page.screenshot(path=str(tmp_path / "work-order.png"), full_page=True)
