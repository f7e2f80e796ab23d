"""The dispatcher's desk in Debian's Chromium: a department found by typing three characters of its
Chinese name, then dispatched; and what the pages used to hide behind a probe of the router (the
citizen's withdraw button, the dashboard's undelivered list) is there under the pinned web stack."""

import re

from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import NotificationStatus
from appealflow.models.appeals.tracking import access_token
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.browser.steps import sign_in
from tests.conftest import on_sqlite
from tests.staff import appeal_in


@on_sqlite
def test_a_dispatcher_finds_a_department_by_typing_and_dispatches(browser, stack, tmp_path):
    context = browser.new_context(locale="zh-CN", base_url=stack.start_api())
    context.set_default_timeout(15_000)
    errors: list[str] = []
    desk = context.new_page()
    desk.on("pageerror", lambda e: errors.append(str(e)))
    code, _ = appeal_in("triage")
    sign_in(desk, "dispatcher")
    desk.goto(f"/work/appeals/{code}")
    if desk.locator("#action-dispatch").get_attribute("open") is None:
        desk.locator("#action-dispatch summary").click()
    desk.locator("#dispatch-department-filter").press_sequentially("生态环", delay=30)
    assert desk.locator("#dispatch-department").input_value() == "ecology_environment"
    visible = desk.locator("#dispatch-department option[data-names]:not([hidden])")
    assert visible.count() == 1, visible.all_inner_texts()
    desk.screenshot(path=str(tmp_path / "desk.png"), full_page=True)
    desk.locator("#do-dispatch").click()
    desk.wait_for_url(re.compile(r"/work\?done="))
    with session_scope(get_settings().sqlalchemy_url) as session:  # off the dispatcher's desk, to that department
        assert session.execute(select(Appeal.status, Appeal.department_code).where(Appeal.code == code)).one() \
            == ("dispatched", "ecology_environment")

    with session_scope(get_settings().sqlalchemy_url) as session:  # one message the relay never took
        session.execute(update(Notification).values(status=NotificationStatus.failed, last_error="550 no such user"))
    supervisor = context.new_page()
    supervisor.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(supervisor, "supervisor")
    supervisor.goto("/supervise")
    assert int(supervisor.locator("#undelivered-count").inner_text()) >= 1
    # Nothing breached yet: the chart says so instead of drawing an empty frame.
    assert supervisor.locator("#chart-breaches .chart-empty").inner_text() == "这段时间没有可画的数据。"
    citizen_code, _ = appeal_in("accepted")
    supervisor.evaluate("window.refreshFigures()")  # two appeals on one spot now: a hot topic, by name
    supervisor.wait_for_function("document.querySelector('#hot-list').textContent.indexOf('件') !== -1")
    hot = supervisor.locator("#hot-list").inner_text()
    assert "城市管理" in hot and "八大关" in hot and "urban_management" not in hot and "badaguan" not in hot
    citizen = context.new_page()
    citizen.goto(f"/t/{citizen_code}?token={access_token(get_settings().signing_key(), citizen_code)}")
    assert citizen.locator("#withdraw").count() == 1
    assert not errors, errors


@on_sqlite
def test_a_dispatcher_ticks_appeals_from_the_keyboard_and_dispatches_them_at_once(browser, stack):
    """Four appeals in triage ticked with j/x; someone dispatches one of them meanwhile: three are
    dispatched, and the fourth is said to have been left, with why."""
    import uuid

    marker = f"批量{uuid.uuid4().hex[:8]}"
    codes = [appeal_in("triage")[0] for _ in range(4)]
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(update(Appeal).where(Appeal.code.in_(codes)).values(title=f"{marker} 路灯不亮"))
    context = browser.new_context(locale="zh-CN", base_url=stack.start_api())
    context.set_default_timeout(15_000)
    errors: list[str] = []
    desk = context.new_page()
    desk.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(desk, "dispatcher")
    desk.goto(f"/work?q={marker}")
    assert desk.locator("#queue tbody tr").count() == 4 and "j / k" in desk.inner_text("#shortcuts-hint")
    desk.locator("body").click()
    for key in ("j", "x", "j", "x", "j", "x", "j", "x"):
        desk.keyboard.press(key)
    assert desk.locator("input[name=appeals]:checked").count() == 4
    assert desk.inner_text("#bulk-count") == "已勾选 4 件"
    assert desk.locator("#bulk-parent").is_hidden()  # the fields of the chosen action only
    desk.locator("#bulk-department-filter").press_sequentially("生态环", delay=30)
    assert desk.locator("#bulk-department").input_value() == "ecology_environment"
    stale = codes[2]
    with session_scope(get_settings().sqlalchemy_url) as session:  # another dispatcher acts first
        session.execute(update(Appeal).where(Appeal.code == stale).values(
            status="dispatched", department_code="housing", version=Appeal.version + 1))
    desk.click("#bulk-submit")
    desk.wait_for_selector("#bulk-outcome")
    assert desk.inner_text("#bulk-done").startswith("已派单 3 件")
    assert desk.locator("#bulk-refused").inner_text() == "1 件未处理，其余不受影响："
    # Dispatched elsewhere, it left the dispatcher's view: the single action would have said 404 too.
    assert "可能有人先处理了" in desk.locator(f"#bulk-outcome li[data-code='{stale}']").inner_text()
    with session_scope(get_settings().sqlalchemy_url) as session:
        placed = dict(session.execute(select(Appeal.code, Appeal.department_code).where(Appeal.code.in_(codes))).all())
    assert placed == {c: ("housing" if c == stale else "ecology_environment") for c in codes}
    assert not errors, errors
