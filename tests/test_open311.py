"""Open311 GeoReport v2 through HTTP: every endpoint in JSON and XML against the spec's schemas, real
third-party client libraries end to end, keys and rate limits. Real API, workers, Redis, SMTP."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jsonschema
from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.tracking import access_token
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.runtime.services import wait_until
from appealflow.settings import get_settings
from tests.appeals import CatalogueOracle
from tests.conftest import BIN, on_postgresql, on_sqlite
from tests.staff import HOME, appeal_in, sign_in

SCHEMAS = json.loads((Path(__file__).parent / "georeport_v2_schemas.json").read_text(encoding="utf-8"))
V2 = "/open311/v2"
PLACE = ("shinan", "badaguan")
REQUESTER = {"first_name": "小明", "last_name": "王", "email": "wang.open311@example.test", "phone": "13800001111"}
# The Spark convention: a list element's items, and the leaf fields that are not strings.
ITEMS = {"services": "service", "service_requests": "request", "errors": "error", "attributes": "attribute",
         "values": "value"}
BOOLEAN, INTEGER, NUMBER = {"metadata", "variable", "required"}, {"order", "code"}, {"lat", "long"}


def valid(kind: str, body) -> None:
    jsonschema.validate(body, {"$ref": f"#/$defs/{kind}", **SCHEMAS})


def from_xml(text: str):
    """XML back to the JSON the Spark convention maps it to, typed as the spec types each field."""
    def convert(element):
        if element.tag in ITEMS:
            assert all(child.tag == ITEMS[element.tag] for child in element), element.tag
            return [convert(child) for child in element]
        if len(element):
            return {child.tag: convert(child) for child in element}
        value = element.text
        if value is None:
            return None
        if element.tag in BOOLEAN:
            assert value in ("true", "false"), value
            return value == "true"
        if element.tag in INTEGER and value.isdigit():
            return int(value)
        return float(value) if element.tag in NUMBER else value

    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    root = ElementTree.fromstring(text.encode())
    return root.tag, convert(root)


def get(api: httpx.Client, path: str, **params) -> httpx.Response:
    return api.get(V2 + path, params=params)


def both(api: httpx.Client, path: str, kind: str, root: str, status: int = 200, method: str = "GET", **kwargs):
    """The JSON and XML answers of one call, each checked: status, content type, schema, same content."""
    answers = []
    for fmt, content_type in (("json", "application/json; charset=utf-8"), ("xml", "text/xml; charset=utf-8")):
        response = api.request(method, f"{V2}{path}.{fmt}", **kwargs)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == content_type
        if fmt == "json":
            body = response.json()
        else:
            tag, body = from_xml(response.text)
            assert tag == root
        valid(kind, body)
        answers.append(body)
    return answers


def new_client(api: httpx.Client, name: str, rate_limit: str = "120/minute") -> str:
    response = api.post("/admin/open311/clients", json={"name": name, "rate_limit": rate_limit},
                        headers=api.staff["admin"])
    assert response.status_code == 201, response.text
    return response.json()["api_key"]


def routed_here() -> str:
    """A category the catalogue sends to the test handler's department at PLACE."""
    oracle = CatalogueOracle()
    return next(c for c in ["construction_noise", *oracle.routable_categories()] if oracle.expected(c, *PLACE) == HOME)


def form(key: str, service_code: str, **more) -> dict:
    return {"api_key": key, "service_code": service_code, "lat": "36.0541", "long": "120.3478",
            "description": "八大关附近夜间施工噪音扰民，每天十一点以后还在打桩。", **REQUESTER,
            "attribute[street]": PLACE[1], **more}


def no_contact(text: str) -> None:
    for secret in (REQUESTER["email"], REQUESTER["phone"], "王小明", "小明"):
        assert secret not in text


@on_sqlite
def test_every_endpoint_in_json_and_xml_follows_the_georeport_v2_schemas(staff_api):
    api = staff_api
    key = new_client(api, "schema-check")
    services_json, services_xml = both(api, "/services", "services", "services")
    assert services_json == services_xml and len(services_json) > 100
    assert all(s["metadata"] is True and s["type"] == "realtime" for s in services_json)
    code = routed_here()
    definition, definition_xml = both(api, f"/services/{code}", "service_definition", "service_definition",
                                      params={"jurisdiction_id": "qingdao.gov.cn"})
    assert definition == definition_xml and definition["service_code"] == code
    assert {a["code"] for a in definition["attributes"]} >= {"appeal_type", "priority", "district", "street"}

    # POST: form-encoded; jurisdiction_id in the body for one format, in the query for the other.
    created = []
    for fmt, where in (("json", "data"), ("xml", "params")):
        response = api.post(f"{V2}/requests.{fmt}", data=form(key, code, **({"jurisdiction_id": "q"}
                                                                              if where == "data" else {})),
                            params={"jurisdiction_id": "q"} if where == "params" else None)
        assert response.status_code == 201, response.text
        body = response.json() if fmt == "json" else from_xml(response.text)[1]
        if fmt == "xml":
            assert from_xml(response.text)[0] == "service_requests"
        valid("created", body)
        created.append((body[0]["service_request_id"], response.headers["x-open311-token"]))
        no_contact(response.text)
    (first, token), (second, _) = created

    tokens = both(api, f"/tokens/{token}", "token", "service_requests")
    assert tokens[0] == tokens[1] == [{"service_request_id": first, "token": token}]
    one = both(api, f"/requests/{first}", "requests", "service_requests")
    assert one[0] == one[1] and [r["service_request_id"] for r in one[0]] == [first]
    request = one[0][0]
    assert request["status"] == "open" and request["service_code"] == code
    assert request["requested_datetime"].endswith("+08:00") and (request["lat"], request["long"]) == (36.0541, 120.3478)

    listed = both(api, "/requests", "requests", "service_requests")
    assert listed[0] == listed[1] and [r["service_request_id"] for r in listed[0]] == [second, first]
    for r in listed[0]:
        no_contact(json.dumps(r, ensure_ascii=False))

    # Filters: a list of ids overrides everything else; dates with Z, offsets and fractions.
    def ids(**params):
        response = get(api, "/requests.json", **params)
        assert response.status_code == 200, response.text
        valid("requests", response.json())
        return [r["service_request_id"] for r in response.json()]

    assert ids(service_request_id=f"{first},{second}", status="closed") == [second, first]
    assert ids(service_code=code) == [second, first] and ids(service_code="education") == []
    assert ids(status="open") == [second, first] and ids(status="closed") == []
    assert ids(status="open,closed", page_size=1) == [second] and ids(page_size=1, page=2) == [first]
    requested = datetime.fromisoformat(request["requested_datetime"])
    start = requested - timedelta(minutes=5)
    assert ids(start_date=start.isoformat(timespec="microseconds")) == [second, first]  # +08:00, fraction
    assert ids(start_date=start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == [second, first]
    assert ids(start_date=start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
               end_date=(requested + timedelta(minutes=5)).isoformat(timespec="seconds")) == [second, first]
    assert ids(start_date=(requested + timedelta(days=1)).isoformat()) == []
    assert ids(end_date=(requested - timedelta(days=1)).isoformat()) == []

    # Refusals: the spec's error list in the asked format, with the right HTTP status.
    both(api, "/services/no_such_service", "errors", "errors", status=404)
    both(api, "/requests/000000-NOPE", "errors", "errors", status=404)
    both(api, "/tokens/not-a-token", "errors", "errors", status=404)
    both(api, "/requests", "errors", "errors", status=400, params={"start_date": "2026-11-27T09:00:00"})
    both(api, "/requests", "errors", "errors", status=400, params={"status": "pending"})
    both(api, "/requests", "errors", "errors", status=400, params={"start_date": "2026-01-01T00:00:00Z",
                                                                   "end_date": "2026-06-01T00:00:00Z"})
    both(api, "/requests", "errors", "errors", status=403, method="POST", data=form("o311_wrong", code))
    both(api, "/requests", "errors", "errors", status=403, method="POST", data=dict(form(key, code), api_key=""))
    both(api, "/requests", "errors", "errors", status=404, method="POST", data=form(key, "no_such_service"))
    # No contact: GeoReport makes it optional, so the request is filed, anonymous; nothing is queued
    # for a requester nobody can reach, and the app follows it with its token.
    missing = {k: v for k, v in form(key, code).items() if k not in ("email", "phone")}
    anonymous = api.post(f"{V2}/requests.json", data=missing)
    assert anonymous.status_code == 201, anonymous.text
    filed = anonymous.json()[0]["service_request_id"]
    followed = api.get(f"/appeals/{filed}", headers={"X-Access-Token": anonymous.headers["X-Access-Token"]})
    assert followed.status_code == 200 and followed.json()["anonymous"] is True
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == filed)).scalar_one()
        audiences = set(session.execute(select(Notification.audience).where(
            Notification.appeal_id == appeal_id)).scalars())
    assert "requester" not in audiences
    nowhere = {k: v for k, v in form(key, code).items() if k not in ("lat", "long")}
    assert "location" in both(api, "/requests", "errors", "errors", status=400, method="POST",
                              data=nowhere)[0][0]["description"]
    both(api, "/requests", "errors", "errors", status=400, method="POST",
         data=dict(form(key, code), **{"attribute[colour]": "red"}))
    both(api, "/requests", "errors", "errors", status=400, method="POST", json={"service_code": code})

    # Slashes: the extra one is served, a missing format is a 404 in the spec's shape; never a redirect.
    assert api.get(f"{V2}/services.json/").json() == services_json
    assert api.post(f"{V2}/requests.json/", data=form(key, code)).status_code == 201
    for path in ("/services", "/services/", "/requests", f"/requests/{first}", "/nothing.json"):
        response = api.get(V2 + path)
        assert response.status_code == 404 and not response.is_redirect, path
        body = response.json() if path.endswith(".json") else from_xml(response.text)[1]
        valid("errors", body)


@on_postgresql
def test_a_city_app_files_with_an_open311_client_and_follows_it_to_closed(staff_api, stack, smtp):
    """civicbot (PyPI) files and follows in JSON; georeport (PyPI) follows the same request in XML."""
    from civicbot.http import HttpTransport, RateLimiter
    from civicbot.open311 import Open311Client
    from civicbot.registry import Endpoint
    from georeport import GeoReport

    from appealflow.models.appeals.tracking import access_token
    from appealflow.settings import get_settings

    api = staff_api
    stack.start_worker()
    key = new_client(api, "civicbot-city-app")
    root = f"{api.base_url}{V2}".rstrip("/")
    city = Open311Client(Endpoint(id="appealflow", name="AppealFlow test city", base_url=root, write=True),
                         transport=HttpTransport(rate_limiter=RateLimiter(min_interval=0)))
    reader = GeoReport(root, output_format="xml")

    services = city.list_services()
    code = routed_here()
    assert code in {s["service_code"] for s in services}
    assert {s["service_code"] for s in reader.get_service_list()} == {s["service_code"] for s in services}
    definition = city.get_service_definition(code)
    assert reader.get_service_definition(code)["service_code"] == code
    assert {"street", "priority"} <= {a["code"] for a in definition["attributes"]}

    filed = city.create_request(
        code, dry_run=False, confirm="SEND", api_key=key, validate_remote=True, lat=36.0541, lng=120.3478,
        description="八大关附近夜间施工噪音扰民，每天十一点以后还在打桩。", email=REQUESTER["email"],
        first_name="小明", last_name="王", phone=REQUESTER["phone"],
        attributes={"street": PLACE[1], "priority": "normal", "appeal_type": "complaint"})
    request_id = filed.response[0]["service_request_id"]

    # Routed like any appeal: in the department's queue, its deadline the request's expected time.
    handler = sign_in(api, "handler")

    def queued():
        items = api.get("/queue", headers=handler).json()["items"]
        return next((i for i in items if i["code"] == request_id), None)

    wait_until(lambda: queued() is not None, timeout=60, what="the request in the department's queue")
    item = queued()
    seen = city.get_request(request_id)
    valid("request", seen)
    assert datetime.fromisoformat(seen["expected_datetime"]) == datetime.fromisoformat(item["resolve_due_at"])
    assert seen["expected_datetime"].endswith("+08:00") and seen["status"] == "open"
    assert seen["agency_responsible"] and "待签收" in seen["status_notes"]
    wait_until(lambda: any(r == REQUESTER["email"] for r, _ in smtp.counts()), timeout=60,
               what="the requester's e-mail")
    told = {s: n for (to, s), n in smtp.counts().items() if to == REQUESTER["email"]}
    assert any(s.startswith(f"您的诉求 {request_id} ") for s in told) and set(told.values()) == {1}, told
    no_contact(json.dumps(city.list_requests(service_request_ids=[request_id]), ensure_ascii=False))

    version = item["version"]
    for action, body in (("accept", {}), ("contact", {"reason": "电话联系了诉求人"}),
                         ("reply", {"text": "已责令施工方停止夜间打桩。"})):
        response = api.post(f"/staff/appeals/{request_id}/{action}", json={"version": version, **body},
                            headers=handler)
        assert response.status_code == 200, response.text
        version = response.json()["version"]
        assert city.get_request(request_id)["status"] == "open"
    assert "已答复" in reader.get_service_request(request_id)["status_notes"]

    token = access_token(get_settings().signing_key(), request_id)
    rated = api.post(f"/appeals/{request_id}/rating", params={"token": token},
                     json={"solved": True, "satisfaction": "satisfied"})
    assert rated.status_code == 200 and rated.json()["status"] == "closed"
    closed = city.get_request(request_id)
    assert closed["status"] == "closed" and "满意" in closed["status_notes"] and closed["service_notice"] is None
    assert [r["service_request_id"] for r in city.list_requests(status="closed")] == [request_id]
    in_xml = reader.get_service_request(request_id)
    assert in_xml["status"] == "closed" and in_xml["updated_datetime"] == closed["updated_datetime"]
    assert reader.get_service_requests(service_request_id=request_id)["status"] == "closed"


@on_sqlite
def test_client_keys_are_per_app_revocable_and_rate_limited(staff_api, stack):
    api = staff_api
    code = routed_here()
    refused = api.post("/admin/open311/clients", json={"name": "x"}, headers=api.staff["supervisor"])
    assert refused.status_code == 403
    key = new_client(api, "limited-app", rate_limit="3/minute")
    listed = api.get("/admin/open311/clients", headers=api.staff["admin"]).json()
    assert listed == [{"name": "limited-app", "rate_limit": "3/minute", "revoked": False, "api_key": None}]

    # Idempotency as for any appeal: the same key and body answer the first request; another body is refused.
    first = api.post(f"{V2}/requests.json", data=form(key, code), headers={"Idempotency-Key": "k-1"})
    again = api.post(f"{V2}/requests.json", data=form(key, code), headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = api.post(f"{V2}/requests.json", data=form(key, code, description="另一件事"),
                     headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 400 and "Idempotency-Key" in other.json()[0]["description"]
    # The fourth call in the minute: the limit counts every call with the key, answered or refused.
    limited = api.post(f"{V2}/requests.xml", data=form(key, code))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    tag, body = from_xml(limited.text)
    assert tag == "errors" and body[0]["code"] == 429
    valid("errors", body)

    env = dict(stack.env)
    made = subprocess.run([str(BIN / "appealflow"), "open311", "key", "add", "cli-app", "--rate-limit", "100/minute"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    cli_key = made.stdout.strip()
    conflict = api.post(f"{V2}/requests.json", data=form(cli_key, code, description="另一件事"),
                        headers={"Idempotency-Key": "k-1"})
    assert conflict.status_code == 201  # keys are per client: another app's k-1 is its own
    reused = api.post(f"{V2}/requests.json", data=form(cli_key, code, description="又一件事"),
                      headers={"Idempotency-Key": "k-1"})
    assert reused.status_code == 400 and "Idempotency-Key" in reused.json()[0]["description"]

    revoked = subprocess.run([str(BIN / "appealflow"), "open311", "key", "revoke", "cli-app"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    gone = api.post(f"{V2}/requests.json", data=form(cli_key, code))
    assert gone.status_code == 403 and "revoked" in gone.json()[0]["description"]
    by_admin = api.post("/admin/open311/clients/limited-app/revoke", headers=api.staff["admin"])
    assert by_admin.status_code == 200 and by_admin.json()["revoked"] is True
    assert api.post(f"{V2}/requests.json", data=form(key, code)).status_code == 403


@on_sqlite
def test_an_english_georeport_request_is_stored_and_answered_in_english(staff_api, stack, smtp):
    """The language rule is the domain's, whichever door an appeal comes in by: a request written
    without a Chinese character is the requester's in English, and its first message is English."""
    api = staff_api
    key = new_client(api, "english-app")
    english = {"description": "Night-time piling near Badaguan keeps the whole block awake after 11 pm.",
               "first_name": "Anna", "last_name": "Smith", "email": "anna.open311@example.test"}
    filed = api.post(f"{V2}/requests.json", data=form(key, routed_here(), **english))
    assert filed.status_code == 201, filed.text
    code, token = filed.json()[0]["service_request_id"], filed.headers["X-Access-Token"]
    view = api.get(f"/appeals/{code}", params={"token": token})
    assert view.status_code == 200 and view.json()["language"] == "en"
    chinese = api.post(f"{V2}/requests.json", data=form(key, routed_here()))
    code_zh, token_zh = chinese.json()[0]["service_request_id"], chinese.headers["X-Access-Token"]
    assert api.get(f"/appeals/{code_zh}", params={"token": token_zh}).json()["language"] == "zh"
    stack.start_worker()

    def receipt() -> str | None:
        return next((subject for to, subject in list(smtp.messages)
                     if to == english["email"] and code in subject), None)

    wait_until(lambda: receipt() is not None, timeout=60, what="the receipt of the English request")
    assert receipt().isascii(), receipt()  # "Your appeal ... was received", not 您的诉求


def test_an_apps_position_and_photo_link_reach_the_staff_page_and_a_script_link_stays_text(staff_api):
    from tests.test_pages import _signed_in, page

    key = new_client(staff_api, "mapapp")
    made = []
    for link in ("https://photos.example.test/p/1.jpg", "javascript:alert(document.cookie)"):
        sent = staff_api.post(f"{V2}/requests.json", data=form(key, routed_here(), media_url=link))
        assert sent.status_code == 201, sent.text
        made.append(sent.json()[0]["service_request_id"])
    with session_scope(get_settings().sqlalchemy_url) as session:
        kept = session.execute(select(Appeal.latitude, Appeal.longitude).where(Appeal.code == made[0])).one()
        session.execute(update(Appeal).where(Appeal.code.in_(made)).values(status="triage"))
    assert tuple(kept) == (36.0541, 120.3478)  # lat/long land in the appeal's own position
    dispatcher = _signed_in(str(staff_api.base_url), "dispatcher")
    linked = page(dispatcher, f"/work/appeals/{made[0]}")
    assert '<a href="https://photos.example.test/p/1.jpg"' in linked and 'id="position-map"' in linked
    scripted = page(dispatcher, f"/work/appeals/{made[1]}")
    assert 'href="javascript:' not in scripted and "javascript:alert(document.cookie)" in scripted


def test_a_get_names_the_requesters_first_photo_as_media_url_and_serves_only_that(staff_api, stack):
    from tests.test_files import PDF, _no_gps, _wait_ready, jpeg_with_gps

    key = new_client(staff_api, "photoapp")
    sent = staff_api.post(f"{V2}/requests.json", data=form(key, routed_here()))
    assert sent.status_code == 201, sent.text
    code, token = sent.json()[0]["service_request_id"], sent.headers["X-Access-Token"]
    assert staff_api.get(f"{V2}/requests/{code}.json").json()[0]["media_url"] is None
    staff_api.post(f"/appeals/{code}/files", params={"token": token}, files=[
        ("files", ("说明.pdf", PDF, "application/pdf")),
        ("files", ("工地.jpg", jpeg_with_gps(), "image/jpeg"))]).raise_for_status()
    stack.start_worker()
    photo = _wait_ready(staff_api, code, token, 2)[1]
    media_url = staff_api.get(f"{V2}/requests/{code}.json").json()[0]["media_url"]
    assert media_url == f"{get_settings().public_url.rstrip('/')}/media/{code}/{photo['id']}.jpg"
    assert staff_api.get(f"{V2}/requests.json").json()[0]["media_url"] == media_url  # the list says the same
    served = staff_api.get(f"/media/{code}/{photo['id']}.jpg")
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    _no_gps(served.content)
    # Nothing else comes out of that address: the PDF, another appeal's file, a web appeal's photo.
    document = _wait_ready(staff_api, code, token, 2)[0]
    assert staff_api.get(f"/media/{code}/{document['id']}.jpg").status_code == 404
    web, _ = appeal_in("accepted")
    web_token = access_token(get_settings().signing_key(), web)
    staff_api.post(f"/appeals/{web}/files", params={"token": web_token},
                   files=[("files", ("a.jpg", jpeg_with_gps(), "image/jpeg"))]).raise_for_status()
    web_photo = _wait_ready(staff_api, web, web_token, 1)[0]
    assert staff_api.get(f"/media/{web}/{web_photo['id']}.jpg").status_code == 404
    assert staff_api.get(f"/media/{code}/{web_photo['id']}.jpg").status_code == 404
