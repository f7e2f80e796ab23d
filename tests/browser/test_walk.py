"""The whole loop in a real browser, once in Chinese (on SQLite) and once in English (on PostgreSQL):
a citizen files an appeal on a phone-sized screen and sees the code and QR code; a handler signs in,
finds it, accepts and replies; the citizen opens the link in the e-mail the test's SMTP receiver got
and rates the reply; the supervisor's dashboard shows the change without a reload; the public page
shows the new totals. Every step saves a screenshot; no page may log a console error."""

import re
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import Role
from appealflow.models.city.people import add_user
from appealflow.models.storage.db import session_scope
from appealflow.runtime.services import wait_until
from appealflow.settings import get_settings
from tests.browser.steps import sign_in

PASSWORD = "walk-pass-12345"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESK = {"viewport": {"width": 1280, "height": 900}}
WORDS = {
    "zh": {"filed": "已收到您的诉求", "rated": "感谢您的评价", "title": "八大关路灯不亮", "stale": "有人先一步",
           "text": "小区门口的路灯坏了一个月，晚上很黑 <b>请尽快修</b>", "result": "已更换灯泡，恢复照明。"},
    "en": {"filed": "We received your appeal", "rated": "Thank you for your rating", "title": "Street light out",
           "text": "The street light at our gate has been out for a month <b>please fix</b>",
           "result": "The lamp was replaced; the light works again."},
}


def _appeal(code: str) -> Appeal | None:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return session.execute(select(Appeal).where(Appeal.code == code)).scalar_one_or_none()


def _add_staff(username: str, role: Role, department: str | None = None) -> None:
    with session_scope(get_settings().sqlalchemy_url) as session:
        add_user(session, username=username, password=PASSWORD, role=role, department_code=department)


class Walk:
    """The browser contexts of one walk, their console errors, and numbered screenshots."""

    def __init__(self, browser, base: str, lang: str, shots):
        self.browser, self.base, self.lang, self.shots = browser, base, lang, shots
        self.errors: list[str] = []
        self.step = 0
        self.started = time.monotonic()

    def context(self, **options):
        locale = "zh-CN" if self.lang == "zh" else "en-GB"
        context = self.browser.new_context(locale=locale, timezone_id="Asia/Shanghai", base_url=self.base, **options)
        context.set_default_timeout(15_000)
        return context

    def page(self, context):
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"{page.url}: {e}"))
        return page

    def shot(self, page, name: str) -> None:
        self.step += 1
        print(f"{time.monotonic() - self.started:6.1f}s {name}")
        page.screenshot(path=str(self.shots / f"{self.lang}-{self.step:02d}-{name}.png"), full_page=True)


def _open_action(page, action: str) -> None:
    if page.locator(f"#action-{action}").get_attribute("open") is None:
        page.locator(f"#action-{action} summary").click()


@pytest.mark.parametrize(("database_url", "lang"), [("sqlite", "zh"), ("postgresql", "en")],
                         indirect=["database_url"])
def test_citizen_handler_supervisor_public(browser, stack, smtp, lang, tmp_path):
    stack.start_worker()
    walk = Walk(browser, stack.start_api(), lang, tmp_path)
    words = WORDS[lang]
    email = f"citizen-{lang}@example.test"
    _add_staff("walk_supervisor", Role.supervisor)

    public = walk.page(walk.context(**PHONE))
    public.goto("/open")
    totals = {key: int(public.locator(f"#{key}").inner_text()) for key in ("total", "closed")}
    walk.shot(public, "public-before")

    # The citizen files on a phone: pickers from the reference data, every field labelled.
    citizen_context = walk.context(**PHONE)
    citizen = walk.page(citizen_context)
    citizen.goto("/")
    citizen.keyboard.press("Tab")
    assert citizen.evaluate("document.activeElement.className") == "skip"
    citizen.goto("/file")
    assert citizen.evaluate("document.documentElement.lang").startswith(lang)
    assert citizen.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length)).map(e => e.name)""") == []
    citizen.select_option("#type", "complaint")
    citizen.select_option("#category", "municipal_facilities")
    citizen.select_option("#district", "shinan")
    citizen.select_option("#street", "badaguan")
    citizen.fill("#title", words["title"])
    citizen.fill("#text", words["text"])
    citizen.fill("#name", "王小明" if lang == "zh" else "Ming Wang")
    citizen.fill("#phone", "13800001234")
    citizen.fill("#email", email)
    if citizen.locator("#language").count():
        citizen.select_option("#language", lang)
    citizen.check("#privacy-consent")
    walk.shot(citizen, "citizen-form")
    citizen.dblclick("#file-submit")  # a double click files once
    citizen.wait_for_url(re.compile(r"/t/[^/]+/filed"))
    assert words["filed"] in citizen.content()
    code = citizen.locator("#tracking-code").inner_text()
    citizen.wait_for_function("(() => { const qr = document.getElementById('qr'); "
                              "return qr.complete && qr.naturalWidth > 0; })()")
    walk.shot(citizen, "citizen-confirmation")
    with session_scope(get_settings().sqlalchemy_url) as session:
        assert len(session.execute(select(Appeal).where(Appeal.title == words["title"])).all()) == 1

    # Routed by the worker; the handler of whichever department it went to signs in and finds it.
    wait_until(lambda: (_appeal(code) or Appeal()).status == "dispatched", timeout=60, what="dispatch")
    department = _appeal(code).department_code
    _add_staff(f"walk_handler_{lang}", Role.handler, department)
    handler = walk.page(walk.context(**DESK))
    sign_in(handler, password=PASSWORD, username=f"walk_handler_{lang}")
    handler.get_by_label(re.compile("搜索|Search")).fill(code)
    handler.get_by_label(re.compile("搜索|Search")).press("Enter")
    handler.get_by_role("link", name=code).click()
    walk.shot(handler, "handler-appeal")
    assert "<b>" in handler.locator("#appeal-text").inner_text()  # shown as typed, never as markup
    handler.focus("#do-accept")
    handler.keyboard.press("Enter")  # an action from the keyboard
    handler.wait_for_selector("#done")
    _open_action(handler, "contact")
    handler.click("#do-contact")
    handler.wait_for_selector("#done")
    _open_action(handler, "reply")
    handler.fill("#reply-text", words["result"])
    walk.shot(handler, "handler-reply")
    handler.click("#do-reply")
    handler.wait_for_selector("#done")
    assert handler.locator("#appeal-status").get_attribute("data-status") == "replied"
    walk.shot(handler, "handler-replied")

    # The supervisor's dashboard, open before the rating.
    boss = walk.page(walk.context(**DESK))
    sign_in(boss, password=PASSWORD, username="walk_supervisor")
    boss.wait_for_function("document.querySelector('#chart-rates .main-svg') !== null")
    cell = f"#rates tr[data-department='{department}'] td[data-col='satisfaction_rate']"
    before = boss.locator(cell).inner_text() if boss.locator(cell).count() else "—"
    walk.shot(boss, "dashboard-before")

    # The citizen follows the link in the reply e-mail and rates the reply.
    def reply_mail():
        return [text for subject, text in smtp.to(email) if re.search(r"/rating\?token=", text)]

    wait_until(lambda: reply_mail(), timeout=60, what="the reply e-mail with its rating link")
    link = re.search(r"https?://\S+/rating\?token=[A-Za-z0-9_=%-]+", reply_mail()[0]).group(0)
    parts = urlsplit(link)
    citizen.goto(f"{parts.path}?{parts.query}")
    citizen.wait_for_selector("#rate-form")
    walk.shot(citizen, "citizen-rating")
    citizen.check("#solved-yes")
    citizen.check("#satisfaction-satisfied")
    citizen.click("#rate-form button[type=submit]")
    citizen.wait_for_selector("#notice")
    assert words["rated"] in citizen.locator("#notice").inner_text()
    assert citizen.locator("#status").get_attribute("data-status") == "closed"
    walk.shot(citizen, "citizen-rated")

    # The dashboard shows it without a reload; the public page shows the new totals.
    boss.evaluate("window.refreshFigures()")
    boss.wait_for_function(f"(() => {{ const c = document.querySelector(\"{cell}\"); "
                           f"return c && c.textContent.trim() === '100.0%'; }})()")
    assert before != "100.0%"
    walk.shot(boss, "dashboard-after")
    public.goto("/open")
    assert int(public.locator("#total").inner_text()) == totals["total"] + 1
    assert int(public.locator("#closed").inner_text()) == totals["closed"] + 1
    assert words["title"] not in public.content()
    walk.shot(public, "public-after")

    # /docs renders offline, from the app's own copy of Swagger UI.
    docs = walk.page(walk.context(**DESK))
    docs.goto("/docs")
    docs.wait_for_selector(".swagger-ui .info .title")
    walk.shot(docs, "api-docs")

    assert walk.errors == []
    assert len(list(tmp_path.glob(f"{lang}-*.png"))) == walk.step
