"""An appeal's photos and documents: kept without the EXIF a phone writes (its GPS position), made
into copies by a real worker, served only to who may read the appeal, and refused by content."""

from __future__ import annotations

import io
import re
import time

import httpx
from PIL import Image
from sqlalchemy import select

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.tracking import access_token
from appealflow.models.files.store import store_for
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.staff import appeal_in

GPS_IFD = 0x8825


def jpeg_with_gps(size=(1200, 900), colour=(200, 60, 40)) -> bytes:
    """A real JPEG as a phone writes it: EXIF with a GPS position and a camera serial."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0xA431] = "SERIAL-0042"  # BodySerialNumber
    exif[GPS_IFD] = {1: "N", 2: (36.0, 3.0, 30.0), 3: "E", 4: (120.0, 21.0, 10.0)}
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", exif=exif)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _token(code: str) -> str:
    return access_token(get_settings().signing_key(), code)


def _wait_ready(api, code: str, token: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = api.get(f"/appeals/{code}/files", params={"token": token}).json()["files"]
        if len(shown) == count and all(f["state"] == "ready" for f in shown):
            return shown
        time.sleep(0.3)
    raise AssertionError(f"files not ready: {shown}")


def _no_gps(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as picture:
        exif = picture.getexif()
        assert not exif.get_ifd(GPS_IFD) and GPS_IFD not in exif and 0xA431 not in exif
    assert b"SERIAL-0042" not in data and b"PhoneMaker" not in data


def test_photos_lose_their_exif_in_a_worker_and_are_served_only_to_who_may_read_the_appeal(staff_api, stack):
    code, _ = appeal_in("accepted")
    token = _token(code)
    sent = staff_api.post(f"/appeals/{code}/files", params={"token": token}, files=[
        ("files", ("IMG_0001.JPG", jpeg_with_gps(), "image/jpeg")),
        ("files", ("../../etc/passwd.jpg", jpeg_with_gps(colour=(10, 90, 200)), "image/jpeg")),
        ("files", ("回复函.pdf", PDF, "application/pdf"))])
    assert sent.status_code == 201, sent.text
    files = sent.json()["files"]
    assert [f["state"] for f in files] == ["processing", "processing", "ready"]
    assert files[1]["name"] == "passwd.jpg" and files[2]["name"] == "回复函.pdf"  # no path survives
    assert staff_api.get(files[0]["urls"].get("thumb", f"/appeals/{code}/files/{files[0]['id']}/thumb"),
                         params={"token": token}).status_code == 409  # processing: not the raw upload

    stack.start_worker()  # a real RQ worker makes the copies
    ready = _wait_ready(staff_api, code, token, 3)
    photo = ready[0]
    for copy in ("thumb", "screen"):
        served = staff_api.get(photo["urls"][copy])
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in served.headers["content-security-policy"]
        _no_gps(served.content)
    with Image.open(io.BytesIO(staff_api.get(photo["urls"]["thumb"]).content)) as thumb:
        assert max(thumb.size) <= 320
    document = staff_api.get(ready[2]["urls"]["file"])
    assert document.headers["content-disposition"].startswith("attachment")  # never rendered from our origin
    # What is kept: copies without EXIF, the PDF; the raw uploads are gone.
    store = store_for(get_settings().data_dir, get_settings().file_store)
    for key in store.all_keys():
        data = store.get(key)
        if not data.startswith(b"%PDF"):
            _no_gps(data)

    # The refusals: no token, a wrong token, another department's handler, a PDF asked for as a photo.
    url = f"/appeals/{code}/files/{photo['id']}/screen"
    assert staff_api.get(url).status_code == 404
    assert staff_api.get(url, params={"token": _token("261201-AAAAAAA")}).status_code == 404
    staff_url = f"/staff/appeals/{code}/files/{photo['id']}/screen"
    assert staff_api.get(staff_url, headers=staff_api.staff["other_handler"]).status_code == 404
    assert staff_api.get(staff_url, headers=staff_api.staff["handler"]).status_code == 200
    assert staff_api.get(f"/appeals/{code}/files/{ready[2]['id']}/screen", params={"token": token}).status_code == 404

    # The department's evidence: a reply's after-photo the requester sees; a note's file they do not.
    handler = staff_api.staff["handler"]
    after = staff_api.post(f"/staff/appeals/{code}/files", headers=handler, data={"visibility": "public",
                                                                                  "purpose": "reply"},
                           files=[("files", ("after.jpg", jpeg_with_gps(colour=(0, 160, 0)), "image/jpeg"))])
    internal = staff_api.post(f"/staff/appeals/{code}/files", headers=handler, data={"purpose": "note"},
                              files=[("files", ("内部.pdf", PDF + b"%note", "application/pdf"))])
    assert after.status_code == internal.status_code == 201, (after.text, internal.text)
    assert staff_api.post(f"/staff/appeals/{code}/files", headers=staff_api.staff["other_handler"],
                          files=[("files", ("x.pdf", PDF, "application/pdf"))]).status_code == 404
    seen = _wait_ready(staff_api, code, token, 4)
    assert [f["purpose"] for f in seen][-1] == "reply" and all(f["name"] != "内部.pdf" for f in seen)
    staff_seen = staff_api.get(f"/staff/appeals/{code}/files", headers=handler).json()["files"]
    assert len(staff_seen) == 5 and staff_seen[-1]["visibility"] == "staff"
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == code)).scalar_one()
        kinds = session.execute(select(AppealEvent.detail).where(AppealEvent.appeal_id == appeal_id,
                                                                 AppealEvent.kind == "files_added")).scalars().all()
    assert [(d["photos"], d["documents"], d["visibility"]) for d in kinds] == [
        (2, 1, "public"), (1, 0, "public"), (0, 1, "staff")]


def test_files_are_refused_by_content_size_count_and_pixels(staff_api, stack):
    code, _ = appeal_in("accepted")
    token = _token(code)

    def post(*files):
        return staff_api.post(f"/appeals/{code}/files", params={"token": token}, files=[("files", f) for f in files])

    html = post(("photo.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg"))
    assert html.status_code == 415 and "JPEG, PNG, WebP, HEIC, PDF" in html.text
    big = post(("big.pdf", PDF + b"0" * (get_settings().max_file_bytes), "application/pdf"))
    assert big.status_code == 413 and "MB" in big.text
    seven = post(*[(f"{n}.pdf", PDF + bytes([n]), "application/pdf") for n in range(7)])
    assert seven.status_code == 413 and "6" in seven.text
    assert staff_api.get(f"/appeals/{code}/files", params={"token": token}).json()["files"] == []  # nothing kept
    # A decompression bomb: a few kilobytes that would decode to 100 megapixels.
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 100_000
    assert post(("bomb.png", bomb.getvalue(), "image/png")).status_code == 201
    # Up to the appeal's limit, then refused.
    limit = get_settings().max_files_per_appeal
    for start in range(1, limit, 6):
        assert post(*[(f"{n}.pdf", PDF + str(n).encode(), "application/pdf")
                      for n in range(start, min(start + 6, limit))]).status_code == 201
    over = post(("one-more.pdf", PDF + b"x", "application/pdf"))
    assert over.status_code == 413 and str(limit) in over.text
    stack.start_worker()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = staff_api.get(f"/appeals/{code}/files", params={"token": token}).json()["files"]
        if all(f["kind"] == "document" for f in shown):
            break
        time.sleep(0.3)
    assert all(f["kind"] == "document" for f in shown) and len(shown) == limit - 1  # the bomb: refused, not shown
    # A closed appeal takes no more.
    closed, _ = appeal_in("closed")
    refused = staff_api.post(f"/appeals/{closed}/files", params={"token": _token(closed)},
                             files=[("files", ("a.pdf", PDF, "application/pdf"))])
    assert refused.status_code == 409


def test_the_tracking_and_appeal_pages_show_and_take_files_without_script(stack):
    from tests.test_pages import Form, _signed_in, page

    base = stack.start_api()
    code, _ = appeal_in("accepted")
    token = _token(code)
    citizen = httpx.Client(base_url=base, timeout=60)
    shown = page(citizen, f"/t/{code}", params={"token": token})
    assert 'id="files-form"' in shown and 'enctype="multipart/form-data"' in shown
    hidden = Form(shown).hidden
    empty = citizen.post(f"/t/{code}/files", data=hidden)
    assert empty.status_code == 422 and "请选择要上传的照片或文件" in empty.text
    wrong = citizen.post(f"/t/{code}/files", data=hidden, files=[("files", ("x.jpg", b"<html>", "image/jpeg"))])
    assert wrong.status_code == 415 and "只能上传照片" in wrong.text
    sent = citizen.post(f"/t/{code}/files", data=hidden, follow_redirects=False,
                        files=[("files", ("路灯.jpg", jpeg_with_gps(), "image/jpeg"))])
    assert sent.status_code == 303 and "notice=files_added" in sent.headers["location"]

    handler = _signed_in(base, "handler")
    desk = page(handler, f"/work/appeals/{code}")
    assert 'id="file-list"' in desk and "照片处理中" in desk
    after = handler.post(f"/work/appeals/{code}/files", follow_redirects=False,
                         data={"csrf": Form(desk).hidden["csrf"], "visibility": "public", "purpose": "reply"},
                         files=[("files", ("整改后.jpg", jpeg_with_gps(colour=(0, 150, 0)), "image/jpeg"))])
    assert after.status_code == 303, after.text[:300]
    stack.start_worker()
    ready = _wait_ready(citizen, code, token, 2)
    tracking = page(citizen, f"/t/{code}", params={"token": token})
    assert tracking.count('class="file"') == 2 and "办理部门上传的" in tracking and "您上传的" in tracking
    assert tracking.count("添加了照片或文件") == 2  # in the timeline; a note's files would not be
    thumb = citizen.get(ready[1]["urls"]["thumb"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    desk = page(handler, f"/work/appeals/{code}")
    staff_thumb = re.search(r'<img src="(/work/appeals/[^"]+/thumb)"', desk).group(1)
    served = handler.get(staff_thumb)
    assert served.status_code == 200 and served.headers["x-content-type-options"] == "nosniff"
    _no_gps(served.content)
    assert _signed_in(base, "other_handler").get(staff_thumb).status_code == 404
    assert "添加了照片 1 张" in desk  # the history says who added what


def test_files_come_with_the_filing_form_without_script_and_with_an_operator_s_call(stack):
    """The citizen's /file and the operator's /work/hotline take photos with the appeal (multipart, no
    script); a file that would be refused is refused before anything is filed, and a repeated form
    brings its files once."""
    from tests.test_pages import Form, _signed_in, page

    base = stack.start_api()
    citizen = httpx.Client(base_url=base, timeout=60)
    shown = page(citizen, "/file")
    assert 'enctype="multipart/form-data"' in shown and 'id="files"' in shown
    fields = {**Form(shown).hidden, "privacy": "on", "type": "complaint", "title": "井盖缺失", "district": "shinan",
              "street": "badaguan", "text": "路口井盖丢了，很危险", "phone": "13912340000", "category": ""}
    html_as_jpeg = citizen.post("/file", data=fields, files=[("files", ("井盖.jpg", b"<html>hi</html>", "image/jpeg"))])
    assert html_as_jpeg.status_code == 415 and Form(html_as_jpeg.text).error("files").startswith("只能上传照片")
    assert "路口井盖丢了" in html_as_jpeg.text  # what was typed stays
    seven = [("files", (f"{n}.pdf", PDF, "application/pdf")) for n in range(7)]
    too_many = citizen.post("/file", data=fields, files=seven)
    assert too_many.status_code == 413 and Form(too_many.text).error("files").startswith("文件太大或太多")
    with session_scope(get_settings().sqlalchemy_url) as session:  # neither refusal filed anything
        assert session.execute(select(Appeal).where(Appeal.title == "井盖缺失")).first() is None

    photos = [("files", ("井盖.jpg", jpeg_with_gps(), "image/jpeg")), ("files", ("说明.pdf", PDF, "application/pdf"))]
    first = citizen.post("/file", data=fields, files=photos, follow_redirects=False)
    again = citizen.post("/file", data=fields, files=photos, follow_redirects=False)  # the form sent twice
    assert first.status_code == again.status_code == 303 and first.headers["location"] == again.headers["location"]
    filed = page(citizen, first.headers["location"])
    assert "已收到您的照片和文件 2 个" in filed
    code = re.search(r'id="tracking-code">([^<]+)<', filed).group(1)
    kept = citizen.get(f"/appeals/{code}/files", params={"token": _token(code)}).json()["files"]
    assert [(f["kind"], f["purpose"], f["added_by"]) for f in kept] == [
        ("photo", "filing", "requester"), ("document", "filing", "requester")]

    operator = _signed_in(base, "operator")
    call = {**Form(page(operator, "/work/hotline")).hidden, "type": "complaint", "priority": "normal",
            "title": "工地夜间施工", "text": "来电人说工地每晚施工到凌晨，照片通过微信发来", "district": "shinan",
            "street": "badaguan", "name": "周先生", "phone": "13900004444", "email": "", "category": ""}
    sent = operator.post("/work/hotline", data=call, follow_redirects=False,
                         files=[("files", ("工地.png", _png(), "image/png"))])
    assert sent.status_code == 303 and "notice" not in sent.headers["location"], sent.text[:300]
    hotline_code = sent.headers["location"].rsplit("/", 1)[1]
    theirs = citizen.get(f"/appeals/{hotline_code}/files", params={"token": _token(hotline_code)}).json()["files"]
    assert [(f["kind"], f["purpose"], f["visibility"]) for f in theirs] == [("photo", "filing", "public")]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (90, 90, 90)).save(out, "PNG")
    return out.getvalue()


def test_an_iphone_s_heic_photo_is_taken_and_kept_as_jpeg_without_its_gps(staff_api, stack):
    import pillow_heif

    exif = Image.Exif()
    exif[GPS_IFD] = {1: "N", 2: (36.0, 3.0, 30.0), 3: "E", 4: (120.0, 21.0, 10.0)}
    exif[0xA431] = "SERIAL-0042"
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (1000, 750), (10, 120, 200))).save(out, exif=exif.tobytes())
    heic = out.getvalue()
    assert heic[4:12] == b"ftypheic"
    code, _ = appeal_in("accepted")
    sent = staff_api.post(f"/appeals/{code}/files", params={"token": _token(code)},
                          files=[("files", ("IMG_0001.HEIC", heic, "application/octet-stream"))])
    assert sent.status_code == 201, sent.text
    stack.start_worker()
    ready = _wait_ready(staff_api, code, _token(code), 1)
    assert ready[0]["name"] == "IMG_0001.jpg" and (ready[0]["width"], ready[0]["height"]) == (1000, 750)
    screen = staff_api.get(ready[0]["urls"]["screen"])
    assert screen.headers["content-type"] == "image/jpeg"
    _no_gps(screen.content)


def _messages(code: str, event: str, audience: str) -> list:
    from appealflow.models.telling.outbox import Notification

    with session_scope(get_settings().sqlalchemy_url) as session:
        return list(session.execute(select(Notification).join(Appeal, Appeal.id == Notification.appeal_id).where(
            Appeal.code == code, Notification.event == event, Notification.audience == audience)).scalars())


def test_messages_say_how_many_photos_and_where_to_see_them_and_never_carry_them(staff_api, stack):
    from appealflow.notifications.messages import Links, render_message

    code, version = appeal_in("triage")
    token = _token(code)
    staff_api.post(f"/appeals/{code}/files", params={"token": token}, files=[
        ("files", ("a.jpg", jpeg_with_gps(), "image/jpeg")), ("files", ("b.jpg", jpeg_with_gps(), "image/jpeg")),
        ("files", ("说明.pdf", PDF, "application/pdf"))]).raise_for_status()
    sent = staff_api.post(f"/staff/appeals/{code}/dispatch", headers=staff_api.staff["dispatcher"],
                          json={"version": version, "department": "urban_management"})
    assert sent.status_code == 200, sent.text
    links = Links.of(code, public_url="http://127.0.0.1:8000", signing_key=get_settings().signing_key())
    [told] = _messages(code, "dispatched", "department")
    for language, said in (("zh", "附照片 2 张、文件 1 个，请在工作台查看。"),
                           ("en", "2 photos and 1 document attached: open them in the workbench.")):
        message = render_message("dispatched", "department", told.facts, language=language, zone="Asia/Shanghai",
                                 links=links)
        assert said in message.text.splitlines() and links.workbench_link in message.text
        assert message.images == ()  # a count and a link: no file travels with the message

    version = sent.json()["version"]
    for action in ("accept", "contact"):
        done = staff_api.post(f"/staff/appeals/{code}/{action}", headers=staff_api.staff["handler"],
                              json={"version": version, "text": "已电话联系"})
        assert done.status_code == 200, done.text
        version = done.json()["version"]
    staff_api.post(f"/staff/appeals/{code}/files", headers=staff_api.staff["handler"],
                   data={"visibility": "public", "purpose": "reply"},
                   files=[("files", ("整改后.jpg", jpeg_with_gps(), "image/jpeg"))]).raise_for_status()
    staff_api.post(f"/staff/appeals/{code}/files", headers=staff_api.staff["handler"], data={"purpose": "note"},
                   files=[("files", ("内部.pdf", PDF, "application/pdf"))]).raise_for_status()
    replied = staff_api.post(f"/staff/appeals/{code}/reply", headers=staff_api.staff["handler"],
                             json={"version": version, "text": "已更换路灯"})
    assert replied.status_code == 200, replied.text
    [told] = _messages(code, "replied", "requester")
    message = render_message("replied", "requester", told.facts, zone="Asia/Shanghai", links=links)
    lines = message.text.splitlines()
    # The reply's photo, on a line of its own; the note's PDF is not the requester's to hear of.
    assert lines[lines.index("已更换路灯") + 1] == "附照片 1 张，请在跟踪页面查看。"
    # Counted, never shown: the figures say how many appeals came with photos, the public page only that.
    rates = staff_api.get("/supervision/rates", headers=staff_api.staff["supervisor"]).json()["rows"]
    assert next(r for r in rates if r["department"] == "urban_management")["with_photos"] >= 1
    behind = staff_api.get("/supervision/appeals", headers=staff_api.staff["supervisor"],
                           params={"measure": "with_photos", "department": "urban_management"})
    assert code in behind.text and behind.status_code == 200
    public = staff_api.get("/open/figures.json").json()
    assert public["with_photos_30d"] >= 1 and public["dispatched_30d"] >= public["with_photos_30d"]
    assert code not in str(public) and "with-photos" in staff_api.get("/open").text


def test_collection_takes_old_unreferenced_bytes_and_leaves_young_and_referenced_ones(env, tmp_path):
    from datetime import timedelta

    from appealflow.models.files.attachments import collect_unreferenced
    from appealflow.models.files.store import LocalStore
    from appealflow.models.storage.columns import utcnow

    code, _ = appeal_in("accepted")
    store = LocalStore(tmp_path)  # its own: other tests' uploads in the shared data folder stay out of it
    with session_scope(get_settings().sqlalchemy_url) as session:
        from appealflow.models.files.attachments import add_files, keep_uploads

        appeal = session.execute(select(Appeal).where(Appeal.code == code)).scalar_one()
        uploads = keep_uploads(store, [("回复函.pdf", PDF + b"kept")], max_file_bytes=10**6, max_per_appeal=20)
        [kept] = add_files(session, appeal, uploads, added_by="requester", now=utcnow(), max_per_appeal=20)
        orphan = store.put(PDF + b"a request that died before its commit")
        # Within the grace period nothing goes: the orphan could be an upload about to commit.
        assert collect_unreferenced(session, store, written_before=utcnow() - timedelta(hours=1)) == 0
        assert collect_unreferenced(session, store, written_before=utcnow() + timedelta(seconds=5)) == 1
        assert orphan not in store.all_keys() and store.get(kept.file_key).endswith(b"kept")
