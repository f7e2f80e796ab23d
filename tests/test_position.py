"""The spot: a position given at filing (or by an Open311 app) is kept, shows the citizen open
appeals of the same kind nearby without anyone's details, and makes two differently worded reports
30 m apart one matter for duplicate detection."""

from __future__ import annotations

import math

from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.routing.classifier import embedder
from appealflow.models.routing.duplicates import candidates_for
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.staff import appeal_in

# A spot on the Badaguan coast road, and points metres east of it.
LAT, LONG = 36.0539, 120.3546


def east(metres: float) -> float:
    return LONG + math.degrees(metres / (6_371_000 * math.cos(math.radians(LAT))))


LAMP = {"type": "complaint", "category": "municipal_facilities", "title": "路灯不亮",
        "text": "荣成路口的路灯坏了一个星期，晚上路过很黑。",
        "location": {"district": "shinan", "street": "badaguan", "lat": LAT, "long": LONG, "accuracy_m": 12},
        "requester": {"name": "钱女士", "phone": "13900007777"}, "privacy_consent": True}


def test_a_position_is_kept_and_nearby_open_appeals_show_without_personal_data(staff_api):
    api = staff_api
    created = api.post("/appeals", json=LAMP)
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    with session_scope(get_settings().sqlalchemy_url) as session:
        kept = session.execute(select(Appeal.latitude, Appeal.longitude, Appeal.position_accuracy_m)
                               .where(Appeal.code == code)).one()
    assert tuple(kept) == (LAT, LONG, 12)
    near = api.get("/reference/nearby", params={"lat": LAT, "long": east(50), "category": "municipal_facilities"})
    assert near.status_code == 200
    found = near.json()["appeals"]
    assert [a["code"] for a in found] == [code] and 45 <= found[0]["distance_m"] <= 55
    assert "路灯" not in near.text and "钱" not in near.text and "13900007777" not in near.text
    assert api.get("/reference/nearby", params={"lat": LAT, "long": east(500),
                                                "category": "municipal_facilities"}).json()["appeals"] == []
    assert api.get("/reference/nearby", params={"lat": LAT, "long": east(50),
                                                "category": "housing_property"}).json()["appeals"] == []
    # Half a position, or one off the globe, is named as the problem.
    half = api.post("/appeals", json={**LAMP, "location": {"district": "shinan", "lat": LAT}})
    assert half.status_code == 422 and "lat and long go together" in half.text
    assert api.get("/reference/nearby", params={"lat": 91, "long": LONG}).status_code == 422


def test_two_reports_30_m_apart_in_other_words_are_one_matter_and_600_m_apart_are_not(database_url):
    first, _ = appeal_in("accepted")
    second, _ = appeal_in("received")
    far, _ = appeal_in("accepted")
    with session_scope(database_url) as session:
        for code, title, text, long in (
                (first, "路灯坏了", "海边这盏路灯一到晚上就不亮，黑漆漆的", LONG),
                (second, "照明不亮", "这里的灯已经一周不亮了，晚上走路看不清", east(30)),
                (far, "路灯坏了", "海边这盏路灯一到晚上就不亮，黑漆漆的", east(600))):
            session.execute(update(Appeal).where(Appeal.code == code).values(
                title=title, text=text, latitude=LAT, longitude=long, category_code="municipal_facilities"))
    with session_scope(database_url) as session:
        appeal = session.execute(select(Appeal).where(Appeal.code == second)).scalar_one()
        found = candidates_for(session, appeal, embedder("e5").embed)
    assert [c.code for c in found] == [first], found
    assert "pinned 30 m apart" in found[0].why


def test_the_staff_page_shows_the_position_with_a_map_link_and_an_apps_photo_link_never_as_script(staff_api):
    from tests.test_pages import _signed_in, page

    created = staff_api.post("/appeals", json={**LAMP, "category": "urban_management"})
    code = created.json()["code"]
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(update(Appeal).where(Appeal.code == code).values(status="triage"))
    dispatcher = _signed_in(str(staff_api.base_url), "dispatcher")
    shown = page(dispatcher, f"/work/appeals/{code}")
    assert f"{LAT:.5f}, {LONG:.5f}" in shown and "误差约 12 米" in shown
    assert f"mlat={LAT}&amp;mlon={LONG}" in shown  # the city's map service, a link: nothing loaded from it
    assert not any(src.startswith(("http:", "https:", "//"))
                   for src in __import__("re").findall(r'<(?:script|img|link)[^>]+(?:src|href)="([^"]+)"', shown))
