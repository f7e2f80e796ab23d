"""Policy answers suggested while a citizen types, before they submit: in Debian's Chromium, on the
running API. What the base holds is shown as text, never markup; "not found" shows nothing; the
citizen can still submit."""

import json
import re

from appealflow.models.routing.classifier import embedder
from appealflow.models.routing.policy_qa import SAMPLE_QA_BASE, import_base, parse
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.conftest import on_sqlite

# An entry whose words are markup: it must reach the page as text.
HOSTILE = {"question": "<img src=x onerror=window.pwned=1>居住证怎么办理续签？",
           "answer": "<b>居住证</b>到期前30天内可在网上续签。<script>window.pwned=2</script>",
           "theme": "government_services", "source": "<i>测试来源</i>", "valid_from": "2026-01-01", "valid_to": None}


@on_sqlite
def test_suggestions_while_typing(browser, stack, tmp_path):
    with session_scope(get_settings().sqlalchemy_url) as session:
        # A few entries of the sample base: embedding all of them would only make the test slower.
        import_base(session, [*parse(SAMPLE_QA_BASE.read_text(encoding="utf-8"), "json")[:8],
                              *parse(json.dumps([HOSTILE]), "json")],
                    embedder(get_settings().embedding_backend).embed)
    context = browser.new_context(locale="zh-CN", base_url=stack.start_api(),
                                  viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    errors: list[str] = []
    citizen = context.new_page()
    citizen.on("console", lambda m: m.type == "error" and errors.append(m.text))
    citizen.on("pageerror", lambda e: errors.append(str(e)))
    citizen.goto("/file")
    panel = citizen.locator("#policy-suggest")
    assert panel.is_hidden()

    citizen.select_option("#type", "consultation")
    citizen.locator("#title").press_sequentially("灵活就业交社保", delay=20)
    citizen.locator("#text").press_sequentially("灵活就业养老保险怎么交", delay=20)
    panel.wait_for(state="visible")
    first = citizen.locator("#policy-suggest-list li").first
    assert first.locator(".policy-q").inner_text() == "灵活就业人员怎么缴纳养老保险？"
    assert "来源" in first.locator(".source").inner_text()
    assert re.search(r"找到 \d 条", citizen.locator("#policy-suggest-status").inner_text())
    citizen.screenshot(path=str(tmp_path / "suggestions.png"), full_page=True)

    # Markup in the base is shown as typed: no element made of it, no script run.
    citizen.fill("#title", "居住证续签")
    citizen.fill("#text", "居住证怎么办理续签")
    citizen.wait_for_function("document.querySelector('#policy-suggest-list').textContent.includes('<img')")
    assert citizen.locator("#policy-suggest img, #policy-suggest script, #policy-suggest b").count() == 0
    assert "<i>测试来源</i>" in panel.inner_text()
    assert citizen.evaluate("window.pwned") is None

    # Nothing close: the suggestions go away quietly.
    citizen.fill("#title", "火星天气")
    citizen.fill("#text", "火星上的天气怎么样")
    panel.wait_for(state="hidden")

    # "Still want to submit": the suggestions step aside and the form files as ever.
    citizen.fill("#title", "灵活就业交社保")
    citizen.fill("#text", "灵活就业养老保险怎么交，我想当面问清楚")
    panel.wait_for(state="visible")
    citizen.click("#policy-suggest-continue")
    assert panel.is_hidden()
    assert citizen.evaluate("document.activeElement.id") == "name"
    citizen.fill("#name", "孙丽")
    citizen.fill("#phone", "13900002222")
    citizen.check("#privacy-consent")
    citizen.click("#file-submit")
    citizen.wait_for_url(re.compile(r"/t/[^/]+/filed"))
    assert errors == []
    context.close()
