"""The citizen's edges on a phone, in Chinese: an empty form, a bad phone number and a 10,000-character
text each get a Chinese message beside the field with what was typed kept; then, filed, the citizen
adds to the appeal unasked, withdraws it, and reads both in their own timeline."""

import re

from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.storage.db import session_scope
from appealflow.runtime.services import wait_until
from appealflow.settings import get_settings
from tests.browser.steps import fill_filing
from tests.conftest import on_sqlite
from tests.requester_receivers import Gateway

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
LONG = "工地夜间施工噪音很大，" * 1000  # 11,000 characters


def _error(page, field: str) -> str:
    found = page.locator(f"#{field}-error")
    return found.inner_text().strip() if found.count() else ""


@on_sqlite
def test_form_errors_in_chinese_beside_the_field_then_add_and_withdraw(browser, stack, tmp_path):
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=stack.start_api(), **PHONE)
    context.set_default_timeout(15_000)
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    # A refused form is a 422 page by design; Chromium logs that as a failed load. Anything else counts.
    page.on("console", lambda m: m.type == "error" and "status of 422" not in m.text and errors.append(m.text))

    # Empty: first the privacy notice to agree to, then every missing field named beside itself.
    page.goto("/file")
    page.click("#file-submit")
    page.wait_for_selector("#privacy-error")
    assert _error(page, "privacy") == "请先阅读并同意隐私说明。"
    assert "承办部门" in page.locator("#privacy-notice").inner_text()
    page.check("#privacy-consent")
    page.click("#file-submit")
    page.wait_for_selector("#title-error")
    assert _error(page, "title") == "请填写标题。"
    assert _error(page, "text") == "请填写具体内容。"
    assert page.locator("#title").get_attribute("aria-invalid") == "true"

    # A bad phone: said plainly, and what was typed stays.
    fill_filing(page, title="工地夜间施工", text="每天晚上十一点后还在施工。", phone="电话12345")
    page.click("#file-submit")
    page.wait_for_selector("#phone-error")
    assert _error(page, "phone").startswith("手机号码应为数字")
    assert page.locator("#title").input_value() == "工地夜间施工"
    assert page.locator("#text").input_value() == "每天晚上十一点后还在施工。"
    assert page.locator("#phone").input_value() == "电话12345"
    page.screenshot(path=str(tmp_path / "bad-phone.png"), full_page=True)

    # 11,000 characters: counted as typed, the message beside the field, the form held, nothing cut.
    page.fill("#phone", "13800002222")
    page.fill("#text", LONG)
    count = page.locator("#text-count")
    assert "最多 5000 个字" in count.inner_text() and "11000 / 5000" in count.inner_text()
    assert page.locator("#text").get_attribute("aria-invalid") == "true"
    page.click("#file-submit")
    page.wait_for_timeout(500)
    assert page.url.endswith("/file") and page.locator("#text").input_value() == LONG
    with session_scope(get_settings().sqlalchemy_url) as session:
        assert session.execute(select(func.count()).select_from(Appeal)).scalar_one() == 0
    page.fill("#text", "每天晚上十一点后还在施工，影响休息。")
    assert count.inner_text() == "已输入 18 / 5000 字"

    page.click("#file-submit")
    page.wait_for_url(re.compile(r"/t/[^/]+/filed"))
    page.goto(page.locator("#tracking-link").get_attribute("href"))

    # Adding unasked while it is open, then withdrawing: both in the citizen's own timeline.
    page.fill("#info-text", "施工地点在八大关路3号旁边。")
    page.click("#add-information button[type=submit]")
    page.wait_for_selector("#notice")
    assert "已转给办理部门" in page.locator("#notice").inner_text()
    assert "施工地点在八大关路3号旁边。" in page.locator("#timeline").inner_text()
    page.locator("#withdraw summary").click()
    page.fill("#withdraw-reason", "施工已经停了")
    page.click("#withdraw button[type=submit]")
    page.wait_for_selector("#notice")
    assert page.locator("#status").get_attribute("data-status") == "closed"
    timeline = page.locator("#timeline").inner_text()
    assert "施工已经停了" in timeline and "施工地点在八大关路3号旁边。" in timeline
    assert page.locator("#timeline li[data-kind='withdraw']").count() == 1
    page.screenshot(path=str(tmp_path / "withdrawn.png"), full_page=True)
    assert not errors, errors


@on_sqlite
def test_the_text_message_is_one_segment_and_its_short_link_opens_the_tracking_page(browser, stack, tmp_path):
    gateway = Gateway().up()
    try:
        base = stack.start_api()
        stack.env.update(APPEALFLOW_SMS_URL=gateway.url("sms/{phone}"), APPEALFLOW_PUBLIC_URL=base)
        stack.start_worker()  # the worker writes the links
        context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base, **PHONE)
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.goto("/file")
        fill_filing(page, title="路灯不亮", text="小区门口路灯坏了一个月。", phone="13800003333")
        page.check("#privacy-consent")
        page.click("#file-submit")
        page.wait_for_url(re.compile(r"/t/[^/]+/filed"))
        code = page.locator("#tracking-code").inner_text()
        assert "短信" in page.locator("#next-channel").inner_text()  # where the messages will come
        wait_until(lambda: gateway.at("/sms/13800003333"), timeout=60, what="the text message")
        sms = gateway.at("/sms/13800003333")[0]
        text = sms["message"]
        assert len(text) <= 70 and code in text and not sms.get("title"), text  # one segment, Chinese only
        found = re.search(r"https?://\S+/s/[0-9A-Z]+", text)
        assert found, text
        short = found.group(0)
        other = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **PHONE).new_page()
        other.goto(short)  # as the phone would open it: a new browser, no cookies
        other.wait_for_selector("#status")
        assert re.search(rf"/t/{code}\?token=", other.url) and code in other.locator("h1").inner_text()
        other.screenshot(path=str(tmp_path / "from-sms.png"), full_page=True)
    finally:
        gateway.down()
