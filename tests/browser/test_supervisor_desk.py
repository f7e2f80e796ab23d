"""The supervisor's dashboard in Debian's Chromium, in Chinese: filtered by district and period in the
URL, a department's overdue count opens exactly those appeals, a supervision order (督办单) goes to
the department about them, and the department's head finds it first on the queue and answers it."""

import re
from datetime import timedelta

from sqlalchemy import update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.browser.steps import sign_in
from tests.conftest import on_sqlite
from tests.staff import HOME, appeal_in

CITY_DAY = "%Y-%m-%d"


@on_sqlite
def test_filter_drill_down_and_a_supervision_order_the_department_answers(browser, stack, tmp_path):
    late = [appeal_in("accepted", due_in=timedelta(hours=-3))[0] for _ in range(2)]  # 市南区, overdue
    elsewhere, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
    on_time, _ = appeal_in("accepted")
    with session_scope(get_settings().sqlalchemy_url) as session:  # one overdue in another district
        session.execute(update(Appeal).where(Appeal.code == elsewhere).values(district="laoshan", street=None))
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=stack.start_api(),
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    errors: list[str] = []
    boss = context.new_page()
    boss.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(boss, "supervisor")
    boss.goto("/supervise")
    today = (utcnow() + timedelta(hours=8)).strftime(CITY_DAY)
    boss.fill("#f-start", (utcnow() + timedelta(hours=8) - timedelta(days=1)).strftime(CITY_DAY))
    boss.fill("#f-end", today)
    boss.select_option("#f-district", "shinan")
    boss.click("#apply-filters")
    boss.wait_for_url(re.compile(r"district=shinan"))
    assert f"end={today}" in boss.url  # the filters stay in the URL
    cell = boss.locator(f"#rates tr[data-department='{HOME}'] td[data-col='overdue'] a")
    assert cell.inner_text() == "2"
    boss.screenshot(path=str(tmp_path / "dashboard-filtered.png"), full_page=True)
    cell.click()
    boss.wait_for_url(re.compile(r"/supervise/appeals\?"))
    listed = sorted(boss.locator("#figure-appeals tbody tr").evaluate_all("rows => rows.map(r => r.dataset.code)"))
    assert listed == sorted(late), (listed, late)  # exactly those: not the other district's, not the on-time one
    assert elsewhere not in listed and on_time not in listed

    # A supervision order about them, to the department, answered by tomorrow.
    boss.locator("#order-panel summary").click()
    assert boss.locator("#order-department").input_value() == HOME
    boss.fill("#order-subject", "两件超期诉求，请于明日前说明原因并办结。")
    boss.fill("#order-due", (utcnow() + timedelta(hours=8) + timedelta(days=1)).strftime(CITY_DAY))
    boss.click("#issue-order")
    boss.wait_for_selector("#order-issued")

    # The department's head sees it first, above the queue, and answers it.
    head = context.browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=stack.api_url,
                                       viewport={"width": 1280, "height": 900}).new_page()
    head.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(head, "department_head")
    first = head.locator("main > section, main > table, main > form").first
    assert first.get_attribute("id") == "orders"
    assert "两件超期诉求" in head.locator("#orders").inner_text()
    assert all(code in head.locator("#orders").inner_text() for code in late)
    order = head.locator("#orders li.order").first
    order.locator("textarea").fill("已约谈施工单位，两件均于今日办结。")
    order.locator("button[type=submit]").click()
    head.wait_for_selector("#order-answered")
    assert head.locator("#orders").count() == 0  # answered: off the top of the queue
    head.goto(f"/work/appeals/{late[0]}")
    history = head.locator("#history").inner_text()
    assert "督办单" in history and "按时" in history and "已约谈施工单位" in history
    head.screenshot(path=str(tmp_path / "head-answered.png"), full_page=True)
    assert not errors, errors
