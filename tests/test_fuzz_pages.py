"""The pages and the form endpoints fuzzed with text no form should send: non-ASCII, NUL, control and
right-to-left characters, invalid UTF-8, very long values, in every field (URL-encoded and
multipart) and in every header a page reads. Whatever comes back, it is never a 5xx."""

from __future__ import annotations

import re
from collections import Counter

import httpx

from appealflow.models.appeals.enums import AppealStatus
from tests.conftest import on_postgresql
from tests.staff import PASSWORD, appeal_in

TEXTS = ["王@例子.测试🙂", "a\x00b", "\u202e\u0007", "x" * 3000]
RAW_BYTES = [b"\xe7\x8e\x8b\xe5\x85\x88\xe7\x94\x9f", b"\xff\xfe\xfd", b"a;b=\xc3\x28"]
HEADERS = ["accept-language", "idempotency-key", "x-api-key", "authorization", "accept", "x-forwarded-for"]
COOKIES = ["af_csrf", "af_lang", "af_staff"]

FILING = {"type": "complaint", "category": "", "title": "路灯不亮", "text": "小区门口路灯坏了", "district": "shinan",
          "street": "badaguan", "address": "", "name": "王先生", "phone": "13800000001",
          "email": "wang@example.test", "language": "", "priority": "normal",
          "idempotency_key": "k" * 20}


def _csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _signed_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    csrf = _csrf(client, "/staff/sign-in")
    signed = client.post("/staff/sign-in", data={"username": username, "password": PASSWORD, "csrf": csrf},
                         follow_redirects=False)
    assert signed.status_code == 303, signed.text[:300]
    return client


def _forms(citizen_code: str, token: str, staff_code: str) -> list[tuple[str, str, dict]]:
    """(who, path, fields) for every form the pages take, and the form endpoints of the API."""
    return [
        ("anyone", "/file", FILING),
        ("operator", "/work/hotline", FILING),
        ("anyone", "/staff/sign-in", {"username": "handler", "password": "wrong", "next": "/work"}),
        ("handler", "/staff/sign-out", {}),
        ("anyone", f"/t/{citizen_code}/information", {"token": token, "text": "补充一下"}),
        ("anyone", f"/t/{citizen_code}/rate", {"token": token, "solved": "yes", "satisfaction": "satisfied",
                                               "comment": "好"}),
        ("anyone", f"/t/{citizen_code}/withdraw", {"token": token}),
        ("handler", f"/work/appeals/{staff_code}/accept", {"version": "3"}),
        ("handler", f"/work/appeals/{staff_code}/reply", {"version": "3", "text": "已处理"}),
        ("handler", f"/work/appeals/{staff_code}/return", {"version": "3", "reason": "不归我们管"}),
        ("handler", f"/work/appeals/{staff_code}/request_extension", {"version": "3", "extra": "3d", "reason": "x"}),
        ("dispatcher", f"/work/appeals/{staff_code}/dispatch", {"version": "3", "department": "housing",
                                                                 "assisting": "water_supply_group"}),
        ("supervisor", "/supervise/undelivered/1/retry", {}),
        ("anyone", "/auth/token", {"username": "handler", "password": "wrong"}),
        ("anyone", "/open311/v2/requests.json", {"api_key": "o311_x", "service_code": "construction_noise",
                                                 "description": "夜间施工", "email": "a@example.test",
                                                 "lat": "36.05", "long": "120.34"}),
    ]


PAGES = ["/", "/file", "/track?code=261127-K7Q9XMA", "/work?q=路灯&status=accepted", "/work/hotline",
         "/supervise?lang=zh", "/open?lang=en", "/staff/sign-in?next=/work"]


@on_postgresql
def test_no_field_or_header_makes_a_page_or_form_answer_5xx(stack, env):
    base = stack.start_api()
    with httpx.Client(base_url=base, timeout=30) as api:
        filed = api.post("/appeals", json={"type": "complaint", "title": "噪音", "text": "夜间施工噪音",
                                           "requester": {"phone": "13800000009"}})
        assert filed.status_code == 201, filed.text
    citizen_code, token = filed.json()["code"], filed.json()["access_token"]
    staff_code, _ = appeal_in(AppealStatus.dispatched)
    clients = {"anyone": httpx.Client(base_url=base, timeout=30)}
    for who in ("operator", "handler", "dispatcher", "supervisor"):
        clients[who] = _signed_in(base, who)
    statuses: Counter = Counter()
    failures: list[str] = []

    def check(client: httpx.Client, method: str, path: str, what: str, **request) -> None:
        try:
            response = client.request(method, path, **request)
        except httpx.TransportError as error:  # the server dropped the connection: an unanswered 500
            statuses["reset"] += 1
            failures.append(f"connection reset: {method} {path} {what}: {error}")
            return
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {method} {path} {what}: {response.text[:200]!r}")

    try:
        for who, path, fields in _forms(citizen_code, token, staff_code):
            client = clients[who]
            page = "/file" if path == "/file" else "/work/hotline" if path == "/work/hotline" else "/staff/sign-in"
            csrf = _csrf(client, page)
            base_fields = {**fields, "csrf": csrf}
            for name in base_fields:
                for value in TEXTS:
                    posted = {**base_fields, name: value}
                    check(client, "POST", path, f"{who} {name}={value[:20]!r} urlencoded", data=posted)
                    check(client, "POST", path, f"{who} {name}={value[:20]!r} multipart",
                          files={k: (None, v.encode("utf-8", "surrogatepass")) for k, v in posted.items()})
            for header in HEADERS:
                for raw in RAW_BYTES:
                    check(client, "POST", path, f"{who} header {header}={raw!r}", data=base_fields,
                          headers={header: raw})
            # A field name of its own that no form has, and a file where text belongs.
            check(client, "POST", path, f"{who} odd names and a file", data={"csrf": csrf},
                  files={"\u738b\x00": (None, b"x"), "title": ("t.txt", b"\x00\xff", "text/plain")})
        for path in PAGES:
            for who in ("anyone", "supervisor"):
                client = clients[who]
                for header in HEADERS:
                    for raw in RAW_BYTES:
                        check(client, "GET", path, f"{who} header {header}={raw!r}", headers={header: raw})
                for cookie in COOKIES:
                    for raw in RAW_BYTES:
                        check(client, "GET", path, f"{who} cookie {cookie}={raw!r}",
                              headers={"cookie": b"%s=%s" % (cookie.encode(), raw)})
                for value in TEXTS:
                    check(client, "GET", path, f"{who} query {value[:20]!r}",
                          params={name: value for name in ("lang", "q", "code", "phone", "next", "status")})
    finally:
        for client in clients.values():
            client.close()
    assert not failures, f"{len(failures)} answers were 5xx, e.g. {failures[:5]}"
    assert sum(statuses.values()) > 1000 and statuses[200] and statuses[422] + statuses[400] + statuses[403], statuses
    print(f"{sum(statuses.values())} fuzzed requests, none 5xx: {dict(sorted(statuses.items()))}")
