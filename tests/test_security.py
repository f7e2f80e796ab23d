"""The security holes found by probing, each closed and shown through HTTP: internal notes kept from
the requester, hotline intake only by a signed-in operator, no existence leaks through merge or a
return, and rate limits on what anyone may call."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.tracking import access_token
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.conftest import on_postgresql, on_sqlite
from tests.staff import ELSEWHERE, HOME, PASSWORD, appeal_in, create_staff, sign_in

GOOD = {
    "type": "complaint", "title": "路灯不亮", "text": "小区门口路灯坏了一个月。",
    "location": {"district": "shinan", "street": "badaguan"},
    "requester": {"name": "王小明", "phone": "13800001111"},
}


def appeals() -> int:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return session.execute(select(func.count()).select_from(Appeal)).scalar_one()


def token(code: str) -> str:
    return access_token(get_settings().signing_key(), code)


class Acting:
    def __init__(self, api, code: str, version: int):
        self.api, self.code, self.version = api, code, version

    def __call__(self, role: str, action: str, **body) -> dict:
        response = self.api.post(f"/staff/appeals/{self.code}/{action}", json={"version": self.version, **body},
                                 headers=self.api.staff[role])
        assert response.status_code == 200, response.text
        self.version = response.json()["version"]
        return response.json()


@on_sqlite
def test_the_requester_never_reads_internal_notes_or_staff_names(staff_api):
    code, version = appeal_in("dispatched")
    act = Acting(staff_api, code, version)
    act("handler", "accept", reason="内部：今天人手不够")
    act("handler", "note", text="内部备注：诉求人多次来电，注意态度")
    act("handler", "add_assist", department=ELSEWHERE, reason="内部：请住建局协查产权")
    act("other_handler", "note", text="协办意见：产权不清，建议退回")
    act("handler", "contact", reason="内部：电话打了三次才接")
    act("handler", "request_extension", extra="2d", reason="内部：等供电公司")
    act("handler", "request_info", text="请提供路灯所在的具体楼号")
    answered = staff_api.post(f"/appeals/{code}/information", params={"token": token(code)}, json={"text": "3号楼"})
    assert answered.status_code == 200, answered.text
    act.version = answered.json()["version"]
    act("handler", "reply", text="已更换3号楼路灯，恢复照明。")

    staff_view = staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["handler"]).text
    assert "内部备注" in staff_view and "协办意见" in staff_view  # staff still read everything
    public = staff_api.get(f"/appeals/{code}", params={"token": token(code)})
    assert public.status_code == 200
    history = public.json()["history"]
    assert [e["kind"] for e in history] == ["received", "accept", "contact", "request_info", "info_received",
                                            "reply"]
    assert "内部" not in public.text and "协办意见" not in public.text
    assert all(":" not in e["actor"] for e in history)  # roles only, no usernames
    assert history[3]["detail"] == {"question": "请提供路灯所在的具体楼号"}
    assert history[-1]["detail"] == {"result": "已更换3号楼路灯，恢复照明。"}
    assert history[1]["detail"] == history[2]["detail"] == {}  # staff reasons stay with staff


@on_postgresql
def test_hotline_intake_only_by_a_signed_in_operator(staff_api, stack):
    hotline = {**GOOD, "channel": "hotline", "operator_id": "op-007"}
    anonymous = staff_api.post("/appeals", json=hotline)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    forged = staff_api.post("/appeals", json=hotline, headers={"Authorization": "Bearer not.a.token"})
    assert forged.status_code == 401
    for role in ("dispatcher", "handler", "supervisor"):
        assert staff_api.post("/appeals", json=hotline, headers=staff_api.staff[role]).status_code == 403, role
    assert appeals() == 0

    by_token = staff_api.post("/appeals", json=hotline, headers=staff_api.staff["operator"])
    assert by_token.status_code == 201, by_token.text
    import subprocess

    from tests.conftest import BIN

    key = subprocess.run([str(BIN / "appealflow"), "user", "key", "operator"], env=stack.env,
                         capture_output=True, text=True, check=True).stdout.strip()
    by_key = staff_api.post("/appeals", json=hotline, headers={"X-API-Key": key})
    assert by_key.status_code == 201, by_key.text
    with session_scope(get_settings().sqlalchemy_url) as session:
        operators = set(session.execute(select(Appeal.operator_id)).scalars())
    assert operators == {"operator"}  # the account, never what the body claims
    # ...and the operator finds what they filed in their own view.
    seen = staff_api.get(f"/staff/appeals/{by_key.json()['code']}", headers=staff_api.staff["operator"])
    assert seen.status_code == 200


@on_sqlite
def test_merge_answers_the_same_for_an_unknown_parent_and_one_outside_the_view(staff_api):
    child, version = appeal_in("triage")
    closed, _ = appeal_in("closed")
    disputed, _ = appeal_in("arbitration")
    received, _ = appeal_in("received")
    answers = []
    for parent in ("261127-ZZZZZZZ", closed, disputed, received, child):
        response = staff_api.post(f"/staff/appeals/{child}/merge", json={"version": version, "parent": parent},
                                  headers=staff_api.staff["dispatcher"])
        answers.append((response.status_code, response.json()))
    assert len({str(a) for a in answers}) == 1, answers
    assert answers[0][0] == 422 and answers[0][1]["detail"][0]["loc"] == ["body", "parent"]
    # A duplicate still joins an appeal a department is working on.
    working, _ = appeal_in("in_progress")
    joined = staff_api.post(f"/staff/appeals/{child}/merge", json={"version": version, "parent": working},
                            headers=staff_api.staff["dispatcher"])
    assert joined.status_code == 200 and joined.json()["status"] == "merged"


@on_postgresql
def test_a_department_removed_by_a_return_or_a_redispatch_reads_the_appeal_no_more(staff_api):
    code, version = appeal_in("triage")
    act = Acting(staff_api, code, version)
    act("dispatcher", "dispatch", department=HOME, assisting=[ELSEWHERE])
    for role in ("handler", "other_handler"):
        assert staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff[role]).status_code == 200
    act("handler", "return", reason="不属于本单位职责")
    unknown = staff_api.get("/staff/appeals/261127-ZZZZZZZ", headers=staff_api.staff["handler"])
    for role in ("handler", "other_handler"):
        gone = staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff[role])
        assert gone.status_code == 404 and gone.json() == unknown.json(), role
        queue = staff_api.get("/queue", headers=staff_api.staff[role]).json()["items"]
        assert code not in {i["code"] for i in queue}

    # Dispatched again, to the department that assisted before, with the first one assisting; then
    # once more to the first alone: the assisting list is what the last dispatch named.
    act("dispatcher", "dispatch", department=ELSEWHERE, assisting=[HOME])
    detail = staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["supervisor"]).json()
    assert detail["department"] == ELSEWHERE and detail["assisting"] == [HOME]
    act("other_handler", "return", reason="不属于本单位职责")
    act("dispatcher", "dispatch", department=HOME)
    detail = staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["supervisor"]).json()
    assert detail["department"] == HOME and detail["assisting"] == []
    assert staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["other_handler"]).status_code == 404


def _limited_api(stack, **limits: str) -> httpx.Client:
    stack.env.update({"APPEALFLOW_RATE_LIMITS_ENABLED": "true",
                      **{f"APPEALFLOW_RATE_LIMIT_{name.upper()}": value for name, value in limits.items()}})
    return httpx.Client(base_url=stack.start_api(), timeout=30)


def _retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= 60
    return wait


@on_sqlite
def test_public_intake_and_tracking_are_rate_limited_per_address(stack):
    with _limited_api(stack, intake="3/minute", tracking="4/minute") as api:
        created = [api.post("/appeals", json=GOOD) for _ in range(3)]
        assert [r.status_code for r in created] == [201] * 3
        refused = api.post("/appeals", json=GOOD)
        _retry_after(refused)
        assert "too many requests" in refused.json()["detail"]
        assert appeals() == 3  # nothing stored past the limit

        code = created[0].json()["code"]
        looked = [api.get(f"/appeals/{code}", params={"token": "x" * 32}) for _ in range(4)]
        assert [r.status_code for r in looked] == [404] * 4
        # Guessing stops here, and so does the right token from the same address for a while.
        _retry_after(api.get(f"/appeals/{code}", params={"token": created[0].json()["access_token"]}))

        create_staff()  # staff are not limited by the public's intake limit
        operator = sign_in(api, "operator")
        hotline = api.post("/appeals", json={**GOOD, "channel": "hotline"}, headers=operator)
        assert hotline.status_code == 201


@on_postgresql
def test_sign_in_is_rate_limited_per_username_and_address(stack):
    create_staff()
    with _limited_api(stack, sign_in="6/minute", sign_in_user="3/minute") as api:
        wrong = [api.post("/auth/token", data={"username": "handler", "password": "guess"}) for _ in range(3)]
        assert [r.status_code for r in wrong] == [401] * 3
        # The right password is refused too now: the limit is on trying, not on failing.
        _retry_after(api.post("/auth/token", data={"username": "handler", "password": PASSWORD}))
        assert api.post("/auth/token", data={"username": "supervisor", "password": PASSWORD}).status_code == 200
        assert api.post("/auth/token", data={"username": "dispatcher", "password": PASSWORD}).status_code == 200
        # Six tries from this address in the minute: a seventh, for any name, waits.
        _retry_after(api.post("/auth/token", data={"username": "admin", "password": PASSWORD}))


@on_sqlite
def test_a_redis_outage_lifts_the_limits_rather_than_refusing_citizens(stack):
    from appealflow.runtime.services import free_port

    stack.env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with _limited_api(stack, intake="1/minute") as api:
        assert [api.post("/appeals", json=GOOD).status_code for _ in range(3)] == [201] * 3
    assert appeals() == 3  # safe in the database; the reconciler dispatches them once Redis is back


def _from(base: str, address: str) -> httpx.Client:
    """A client whose requests come from another loopback address (127.0.0.0/8 is all this host)."""
    return httpx.Client(base_url=base, timeout=30, transport=httpx.HTTPTransport(local_address=address))


@on_sqlite
def test_wrong_digits_from_one_address_never_lock_the_real_caller_out(stack):
    """Ten wrong tries on a code from one address slow that address down on that code; the right
    digits from another address still open it, at once, on the page as in the API."""
    with _limited_api(stack, tracking_phone="60/hour") as api:
        code = api.post("/appeals", json=GOOD).json()["code"]  # the phone ends in 1111
        base = str(api.base_url)
        with _from(base, "127.0.0.2") as guesser:
            tries = [guesser.get(f"/appeals/{code}", params={"phone_last4": f"{n:04d}"}) for n in range(10)]
            assert [t.status_code for t in tries[:3]] == [404] * 3
            assert any(t.status_code == 429 for t in tries)  # the guesser waits, longer each time
            held = guesser.get(f"/appeals/{code}", params={"phone_last4": "1111"})
            assert held.status_code == 429 and int(held.headers["Retry-After"]) >= 1  # even with the right digits
        with _from(base, "127.0.0.3") as caller:
            shown = caller.get(f"/appeals/{code}", params={"phone_last4": "1111"})
            assert shown.status_code == 200 and shown.json()["requester"]["phone"] != GOOD["requester"]["phone"]
            form = caller.get("/track")
            csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            page = caller.post("/track", data={"csrf": csrf, "code": code, "phone": "1111"})
            assert page.status_code == 200 and 'id="read-only"' in page.text
        with _from(base, "127.0.0.4") as newcomer:  # a fresh address with wrong digits: not found, not held
            assert newcomer.get(f"/appeals/{code}", params={"phone_last4": "9999"}).status_code == 404


def test_a_form_token_from_another_staff_session_is_refused(staff_api):
    """A colleague's cookie-and-token pair, planted in another browser, does not carry a form there."""
    base = str(staff_api.base_url)
    code, version = appeal_in("dispatched")

    def session_of(username: str) -> tuple[httpx.Client, str]:
        client = httpx.Client(base_url=base, timeout=30)
        form = client.get("/staff/sign-in").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        signed = client.post("/staff/sign-in", data={"csrf": csrf, "username": username, "password": PASSWORD})
        assert signed.status_code in (200, 303), signed.text[:300]
        page = client.get(f"/work/appeals/{code}").text
        return client, page.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    handler, handler_csrf = session_of("handler")
    head, head_csrf = session_of("department_head")
    try:
        # The handler's CSRF cookie and form token, carried by the head's session: refused.
        head.cookies.set("af_csrf", handler.cookies.get("af_csrf"))
        refused = head.post(f"/work/appeals/{code}/accept", data={"csrf": handler_csrf, "version": version})
        assert refused.status_code == 403
        assert staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["handler"]).json()["version"] == version
        # Each session's own pair works.
        handler.cookies.set("af_csrf", handler.cookies.get("af_csrf"))
        accepted = handler.post(f"/work/appeals/{code}/accept", data={"csrf": handler_csrf, "version": version},
                                follow_redirects=False)
        assert accepted.status_code == 303
    finally:
        handler.close()
        head.close()


def test_a_handler_posting_the_dashboards_retry_form_gets_404(staff_api):
    base = str(staff_api.base_url)
    with httpx.Client(base_url=base, timeout=30) as client:
        form = client.get("/staff/sign-in").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.post("/staff/sign-in", data={"csrf": csrf, "username": "handler", "password": PASSWORD})
        page = client.get("/work").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/supervise/undelivered/1/retry", data={"csrf": csrf})
        assert answer.status_code == 404


@on_sqlite
def test_short_links_open_the_appeal_and_guessing_them_runs_into_the_limit(stack):
    from appealflow.models.storage.columns import utcnow
    from appealflow.models.telling.short_links import key_for

    with _limited_api(stack, short_link="5/minute") as api:
        created = api.post("/appeals", json=GOOD).json()
        with session_scope(get_settings().sqlalchemy_url) as session:
            key = key_for(session, created["code"], now=utcnow())
        opened = api.get(f"/s/{key.lower()}")  # typed in lower case: the same link
        assert opened.status_code == 303 and opened.headers["location"].endswith(
            f"/appeals/{created['code']}?token={created['access_token']}")
        guesses = [api.get(f"/s/{'X' * 7}{n}").status_code for n in range(2, 6)]
        assert guesses == [404] * 4
        _retry_after(api.get(f"/s/{key}"))  # five tries a minute from this address, whichever key
