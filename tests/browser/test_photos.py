"""Photos on a phone: the citizen adds two (one a real JPEG with the GPS position a phone writes)
on their tracking page and sees them as thumbnails once a worker has made the copies; the handler
sees them and replies with an after-photo; the citizen judges the fix by it in the rating form and
rates. What is served carries no GPS, read back with Pillow."""

import io
import re

from PIL import Image

from appealflow.models.appeals.tracking import access_token
from appealflow.settings import get_settings
from tests.browser.steps import sign_in
from tests.conftest import on_sqlite
from tests.staff import appeal_in
from tests.test_files import _no_gps, jpeg_with_gps

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@on_sqlite
def test_photos_in_both_directions_and_a_rating_judged_by_the_after_photo(browser, stack, tmp_path):
    base = stack.start_api()
    stack.start_worker()
    code, _ = appeal_in("in_progress")
    token = access_token(get_settings().signing_key(), code)
    before = tmp_path / "IMG_2041.JPG"
    before.write_bytes(jpeg_with_gps())
    second = tmp_path / "IMG_2042.png"
    Image.new("RGB", (800, 600), (30, 30, 160)).save(second, "PNG")
    after = tmp_path / "after.jpg"
    after.write_bytes(jpeg_with_gps(colour=(20, 170, 60)))
    errors: list[str] = []

    citizen_context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base, **PHONE)
    citizen_context.set_default_timeout(20_000)
    citizen = citizen_context.new_page()
    citizen.on("pageerror", lambda e: errors.append(str(e)))
    citizen.goto(f"/t/{code}?token={token}")
    citizen.set_input_files("#files-input", [str(before), str(second)])
    citizen.click("#files-form button[type=submit]")
    citizen.wait_for_selector("#notice")
    assert "已收到您的照片和文件" in citizen.inner_text("#notice")
    for _ in range(60):  # "processing" until the worker's copies exist
        if citizen.locator("#file-list img").count() == 2:
            break
        citizen.wait_for_timeout(500)
        citizen.reload()
    assert citizen.locator("#file-list img").count() == 2
    for src in citizen.locator("#file-list img").evaluate_all("els => els.map(e => e.getAttribute('src'))"):
        _no_gps(citizen_context.request.get(src).body())

    staff_context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", base_url=base)
    staff_context.set_default_timeout(20_000)
    handler = staff_context.new_page()
    handler.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(handler, "handler")
    handler.goto(f"/work/appeals/{code}")
    assert handler.locator("#file-list img").count() == 2
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
        citizen.goto(f"/t/{code}?token={token}")
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
