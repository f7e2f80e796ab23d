"""Photos on a phone: the citizen files with two (one a real JPEG with the GPS position a phone
writes), picked into a list with progress per file, and sees them as thumbnails once a worker has
made the copies; the handler sees them and replies with an after-photo; the citizen judges the fix by
it in the rating form and rates. What is served carries no GPS, read back with Pillow."""

import io
import re

from PIL import Image
from sqlalchemy import select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import Role
from appealflow.models.city.people import add_user
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.browser.steps import fill_filing, sign_in
from tests.conftest import on_sqlite
from tests.staff import PASSWORD
from tests.test_files import _no_gps, jpeg_with_gps

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
# Each progress bar's highest value, kept across the page change (sessionStorage): the bars move as
# the one request's bytes go, and the next page comes as soon as they are all sent.
WATCH_PROGRESS = """() => {
  new MutationObserver(() => {
    const seen = [...document.querySelectorAll('#file-picks progress')].map(p => Number(p.value));
    if (seen.length) sessionStorage.setItem('progress', JSON.stringify(seen));
  }).observe(document.getElementById('file-picks'), {subtree: true, attributes: true, childList: true});
}"""


def _dispatched(title: str) -> Appeal | None:
    with session_scope(get_settings().sqlalchemy_url) as session:
        found = session.execute(select(Appeal).where(Appeal.title == title)).scalar_one_or_none()
        return found if found is not None and found.department_code else None


@on_sqlite
def test_photos_in_both_directions_and_a_rating_judged_by_the_after_photo(browser, stack, tmp_path):
    base = stack.start_api()
    stack.start_worker()
    before = tmp_path / "IMG_2041.JPG"
    before.write_bytes(jpeg_with_gps(size=(3000, 2250)))  # shrunk in the browser before it is sent
    second = tmp_path / "IMG_2042.png"
    Image.new("RGB", (800, 600), (30, 30, 160)).save(second, "PNG")
    stray = tmp_path / "wrong.pdf"
    stray.write_bytes(b"%PDF-1.4\n%%EOF\n")
    after = tmp_path / "after.jpg"
    after.write_bytes(jpeg_with_gps(colour=(20, 170, 60)))
    errors: list[str] = []

    citizen_context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base, **PHONE)
    citizen_context.set_default_timeout(20_000)
    citizen = citizen_context.new_page()
    citizen.on("pageerror", lambda e: errors.append(str(e)))
    citizen.goto("/file")
    fill_filing(citizen, title="八大关路灯不亮", text="小区门口的路灯坏了一个月，晚上很黑，附照片。",
                phone="13800004321")
    citizen.check("#privacy-consent")
    citizen.set_input_files("#files", [str(before), str(second)])
    citizen.set_input_files("#files", str(stray))  # picked by mistake, removed before sending
    assert citizen.locator("#file-picks li").count() == 3
    assert citizen.locator("#file-picks img").count() == 2  # previews of the photos
    citizen.locator("#file-picks li", has_text="wrong").locator("button").click()
    assert citizen.locator("#file-picks li").count() == 2
    assert citizen.locator("#file-picks progress").count() == 2
    citizen.evaluate(WATCH_PROGRESS)
    citizen.click("#file-submit")
    citizen.wait_for_url(re.compile(r"/t/[^/]+/filed"))
    assert "已收到您的照片和文件 2 个" in citizen.inner_text("#files-kept")
    assert citizen.evaluate("JSON.parse(sessionStorage.getItem('progress'))") == [1, 1]
    tracking = citizen.get_attribute("#tracking-link", "href")
    code = citizen.inner_text("#tracking-code")
    citizen.goto(tracking)
    for _ in range(60):  # "processing" until the worker's copies exist
        if citizen.locator("#file-list img").count() == 2:
            break
        citizen.wait_for_timeout(500)
        citizen.reload()
    assert citizen.locator("#file-list img").count() == 2
    for src in citizen.locator("#file-list img").evaluate_all("els => els.map(e => e.getAttribute('src'))"):
        _no_gps(citizen_context.request.get(src).body())

    # Routed by the worker; a handler of whichever department it went to takes it.
    for _ in range(120):
        dispatched = _dispatched("八大关路灯不亮")
        if dispatched is not None:
            break
        citizen.wait_for_timeout(500)
    assert dispatched is not None
    with session_scope(get_settings().sqlalchemy_url) as session:
        add_user(session, username="photo_handler", password=PASSWORD, role=Role.handler,
                 department_code=dispatched.department_code)
    staff_context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base)
    staff_context.set_default_timeout(20_000)
    handler = staff_context.new_page()
    handler.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(handler, "photo_handler")
    handler.goto(f"/work/appeals/{code}")
    assert handler.locator("#file-list img").count() == 2
    handler.click("#do-accept")
    handler.wait_for_selector("#done")
    if handler.locator("#action-contact").get_attribute("open") is None:
        handler.locator("#action-contact summary").click()
    handler.click("#do-contact")
    handler.wait_for_selector("#done")
    handler.set_input_files("#files-input", str(after))
    handler.check("#files-public")
    handler.select_option("#files-purpose", "reply")
    handler.click("#files-form button[type=submit]")
    handler.wait_for_url(re.compile(rf"/work/appeals/{code}$"))
    if handler.locator("#action-reply").get_attribute("open") is None:
        handler.locator("#action-reply summary").click()
    handler.fill("#reply-text", "路灯已更换，附整改后照片。")
    handler.click("#do-reply")
    handler.wait_for_url(re.compile(r"/work"))

    for _ in range(60):
        citizen.goto(tracking)
        if citizen.locator("#reply-files img").count() == 1:
            break
        citizen.wait_for_timeout(500)
    assert citizen.locator("#reply-files img").count() == 1  # the evidence, inside the rating form's panel
    with Image.open(io.BytesIO(citizen_context.request.get(
            citizen.locator("#reply-files img").get_attribute("src")).body())) as shown:
        assert shown.getpixel((10, 10))[1] > 120  # the green after-photo, not a before-photo
    citizen.screenshot(path=str(tmp_path / "rate-with-evidence.png"), full_page=True)
    citizen.check("#solved-yes")
    citizen.check("#satisfaction-satisfied")
    citizen.click("#rate-form button[type=submit]")
    citizen.wait_for_selector("#notice")
    assert citizen.locator("#status").get_attribute("data-status") == "closed"
    assert not errors, errors
