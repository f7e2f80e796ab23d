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
    assert html.status_code == 415 and "JPEG, PNG, WebP, PDF" in html.text
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
