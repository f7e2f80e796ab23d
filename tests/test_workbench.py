"""The workbench through the HTTP API: every (role, action, status) as the table says, races,
masking, queues, and a full handler day."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import on_both, on_sqlite
from tests.staff import ACCOUNTS, ELSEWHERE, HOME, appeal_in, sign_in
from tests.test_dispatch_end_to_end import wait_for

STATUSES = ["received", "triage", "dispatched", "accepted", "in_progress", "waiting_requester", "replied",
            "returned", "arbitration", "reopened", "merged", "closed"]
DEPT = {"handler", "department_head"}
CENTRE = {"dispatcher", "supervisor"}
OPEN = ["dispatched", "accepted", "in_progress", "waiting_requester"]

# Who may take which action in which status: written out here from the domain guide, not
# derived from the code under test.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "accept": {"dispatched": DEPT},
    "contact": {"accepted": DEPT},
    "request_info": {"accepted": DEPT, "in_progress": DEPT},
    "info_received": {"waiting_requester": DEPT},
    "reply": {"in_progress": DEPT},
    "return": {"dispatched": DEPT, "accepted": DEPT},
    "request_extension": {s: DEPT for s in ["accepted", "in_progress", "waiting_requester"]},
    "decide_extension": {s: {"supervisor"} for s in ["accepted", "in_progress", "waiting_requester"]},
    "add_assist": {s: DEPT for s in OPEN},
    # Notes by whoever may see the appeal and works on it; a dispatcher sees only its own queues.
    "note": {**{s: DEPT | {"supervisor"} for s in OPEN},
             **{s: CENTRE for s in ["triage", "returned", "reopened"]},
             "arbitration": {"supervisor"}, "replied": DEPT | {"supervisor"}},
    "dispatch": {"triage": CENTRE, "returned": CENTRE, "reopened": CENTRE, "arbitration": {"supervisor"}},
    "merge": {"triage": {"dispatcher"}, "returned": {"dispatcher"}},
    "invalidate": {"triage": {"dispatcher"}, "returned": {"dispatcher"}},
    "route": {},  # the system's, never a person's
    "release": {},
    "close": {},
}
PAYLOADS = {
    "reply": {"text": "已更换路灯，恢复照明。"}, "return": {"reason": "不属于本单位职责"},
    "request_extension": {"reason": "需要协调供电公司", "extra": "3d"}, "request_info": {"text": "请提供具体楼号"},
    "add_assist": {"department": ELSEWHERE}, "note": {"text": "已联系现场"}, "dispatch": {"department": HOME},
    "invalidate": {"reason": "重复测试数据"}, "info_received": {"text": "3号楼"},
}


@pytest.fixture
def api(staff_api):
    return staff_api


@on_sqlite  # the table is logic, the same on both backends; 2,000-odd requests, so one of them
def test_every_role_action_and_status_is_allowed_or_refused_as_the_table_says(api):
    standing = {status: appeal_in(status) for status in STATUSES}  # refusals change nothing
    parent, _ = appeal_in("dispatched")
    wrong = []
    for action, allowed_in in EXPECTED.items():
        for status in STATUSES:
            for role in ACCOUNTS:
                allowed = role in allowed_in.get(status, set())
                if allowed:
                    code, version = appeal_in(status, extension=action == "decide_extension")
                else:
                    code, version = standing[status]
                body = {"version": version, **PAYLOADS.get(action, {})}
                if action == "merge":
                    body["parent"] = parent
                if action == "decide_extension":
                    detail = api.get(f"/staff/appeals/{code}", headers=api.staff["supervisor"]).json()
                    pending = [e["id"] for e in detail.get("extension_requests", [])]
                    body.update(approve=True, extension_id=pending[0] if pending else 1)
                response = api.post(f"/staff/appeals/{code}/{action}", json=body, headers=api.staff[role])
                ok = response.status_code == 200
                refused = response.status_code in (403, 404, 409)
                if (allowed and not ok) or (not allowed and not refused) or \
                        (role == "other_handler" and response.status_code != 404):
                    wrong.append((role, action, status, response.status_code, response.text[:120]))
    assert not wrong, "\n".join(map(str, wrong))


def test_another_departments_appeal_is_not_found_whatever_its_status(api):
    for status in OPEN:
        code, version = appeal_in(status)
        seen = api.get(f"/staff/appeals/{code}", headers=api.staff["other_handler"])
        acted = api.post(f"/staff/appeals/{code}/note", json={"version": version, "text": "x"},
                         headers=api.staff["other_handler"])
        assert seen.status_code == acted.status_code == 404, status
        unknown = api.get("/staff/appeals/261127-ZZZZZZZ", headers=api.staff["other_handler"])
        assert seen.json() == unknown.json()  # existence does not leak
        queue = api.get("/queue", headers=api.staff["other_handler"]).json()
        assert code not in {item["code"] for item in queue["items"]}, status


def test_no_credentials_or_a_forged_token_gets_401(api):
    code, _ = appeal_in("dispatched")
    assert api.get("/queue").status_code == 401
    forged = api.get("/queue", headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."})
    assert forged.status_code == 401
    assert api.post("/auth/token", data={"username": "handler", "password": "guess"}).status_code == 401
    assert api.get(f"/staff/appeals/{code}", headers={"X-API-Key": "afk_made_up"}).status_code == 401


@on_both
def test_two_handlers_acting_at_once_one_wins_the_other_gets_409(api):
    code, version = appeal_in("dispatched")

    def accept(role):
        return api.post(f"/staff/appeals/{code}/accept", json={"version": version}, headers=api.staff[role])

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(accept, ["handler", "department_head"]))
    assert sorted(r.status_code for r in responses) == [200, 409]
    conflict = next(r for r in responses if r.status_code == 409).json()
    assert conflict["status"] == "accepted" and conflict["version"] == version + 1
    history = api.get(f"/staff/appeals/{code}", headers=api.staff["handler"]).json()["history"]
    assert [e["kind"] for e in history].count("accept") == 1


def test_personal_data_is_masked_for_everyone_but_the_handling_department(api):
    code, version = appeal_in("dispatched", phone="13912345678")
    assert api.post(f"/staff/appeals/{code}/add_assist", json={"version": version, "department": ELSEWHERE},
                    headers=api.staff["handler"]).status_code == 200
    own = api.get(f"/staff/appeals/{code}", headers=api.staff["handler"]).json()["requester"]
    assert own == {"name": "赵小明", "phone": "13912345678", "email": "zhao@example.test"}
    for role in ("supervisor", "other_handler"):  # the assisting department sees it masked too
        masked = api.get(f"/staff/appeals/{code}", headers=api.staff[role]).json()["requester"]
        assert masked == {"name": "赵**", "phone": "139****5678", "email": "z***@example.test"}, role


def test_the_third_return_goes_to_a_supervisor(api):
    code, version = appeal_in("dispatched", returns=2)
    response = api.post(f"/staff/appeals/{code}/return", json={"version": version, "reason": "非本单位职责"},
                        headers=api.staff["handler"])
    assert response.status_code == 200
    assert response.json()["status"] == "arbitration"
    assert api.get(f"/staff/appeals/{code}", headers=api.staff["dispatcher"]).status_code == 404
    decided = api.post(f"/staff/appeals/{code}/dispatch", json={"version": version + 1, "department": ELSEWHERE},
                       headers=api.staff["supervisor"])
    assert decided.status_code == 200 and decided.json()["department"] == ELSEWHERE


@on_both
def test_an_action_with_a_stale_version_is_refused(api):
    code, version = appeal_in("dispatched")
    response = api.post(f"/staff/appeals/{code}/accept", json={"version": version - 1}, headers=api.staff["handler"])
    assert response.status_code == 409 and response.json()["version"] == version


@on_both
def test_the_queue_is_ordered_by_deadline_filtered_and_paged(api):
    codes = [appeal_in(status)[0] for status in ["dispatched", "accepted", "in_progress"] * 4]
    appeal_in("dispatched", department=ELSEWHERE)
    appeal_in("replied")
    seen, cursor = [], None
    for _ in range(10):
        page = api.get("/queue", params={"limit": 5, **({"cursor": cursor} if cursor else {})},
                       headers=api.staff["handler"]).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # Every open appeal of the department, once, nearest running deadline first: the four waiting to
    # be accepted (due in 2 hours) before the others (due in 5 days), each group in the order made.
    assert [i["code"] for i in seen] == codes[0::3] + [c for i, c in enumerate(codes) if i % 3]
    dues = [i["next_due_at"] for i in seen]
    assert dues == sorted(dues)
    accepted = api.get("/queue", params={"status": "accepted"}, headers=api.staff["handler"]).json()["items"]
    assert {i["status"] for i in accepted} == {"accepted"} and len(accepted) == 4
    assert api.get("/queue", params={"overdue": True}, headers=api.staff["handler"]).json()["items"] == []
    found = api.get("/queue", params={"q": codes[3]}, headers=api.staff["handler"]).json()["items"]
    assert [i["code"] for i in found] == [codes[3]]
    assert api.get("/queue", params={"cursor": "garbage"}, headers=api.staff["handler"]).status_code == 422
    triage = api.get("/queue", headers=api.staff["dispatcher"]).json()["items"]
    assert triage == []


def test_an_api_key_acts_as_its_owner(api, stack):
    import subprocess

    from tests.conftest import BIN

    key = subprocess.run([str(BIN / "appealflow"), "user", "key", "handler"],
                         env=stack.env, capture_output=True, text=True, check=True).stdout.strip()
    code, _ = appeal_in("dispatched")
    assert api.get(f"/staff/appeals/{code}", headers={"X-API-Key": key}).status_code == 200


def test_a_full_handler_day(api, stack, smtp):
    stack.start_worker()  # delivers what the day's actions promise the requester
    code, _ = appeal_in("dispatched")
    me = sign_in(api, "handler")
    queue = api.get("/queue", headers=me).json()["items"]
    assert [i["code"] for i in queue] == [code]
    version = queue[0]["version"]

    def do(action, **body):
        nonlocal version
        response = api.post(f"/staff/appeals/{code}/{action}", json={"version": version, **body}, headers=me)
        assert response.status_code == 200, response.text
        version = response.json()["version"]
        return response.json()

    do("accept")
    do("contact", reason="电话联系了诉求人")
    asked = do("request_info", text="请提供路灯所在的具体楼号")
    assert asked["status"] == "waiting_requester" and asked["paused_at"]
    token = _requester_token(stack, code)
    answered = api.post(f"/appeals/{code}/information", params={"token": token}, json={"text": "3号楼东侧"})
    assert answered.status_code == 200 and answered.json()["status"] == "in_progress"
    version = answered.json()["version"]
    resumed = api.get(f"/staff/appeals/{code}", headers=me).json()
    assert resumed["paused_at"] is None and resumed["resolve_due_at"] > asked["resolve_due_at"]
    done = do("reply", text="已更换3号楼东侧路灯，恢复照明。")
    assert done["status"] == "replied"

    steps = [(e["kind"], e["actor"]) for e in done["history"]]
    assert steps == [("received", "requester"), ("accept", "handler:handler"), ("contact", "handler:handler"),
                     ("request_info", "handler:handler"), ("info_received", "requester:requester"),
                     ("reply", "handler:handler")]
    times = [e["at"] for e in done["history"]]
    assert times == sorted(times)
    expected = {("zhao@example.test", f"您的诉求 {code} 需要补充信息"),
                ("zhao@example.test", f"您的诉求 {code} 已办结答复")}
    wait_for(lambda: expected <= set(smtp.counts()), timeout=30, what="the requester's messages")
    assert all(smtp.counts()[m] == 1 for m in expected)


def _requester_token(stack, code: str) -> str:
    from appealflow.models.appeals.tracking import access_token
    from appealflow.settings import get_settings

    return access_token(get_settings().signing_key(), code)


@pytest.mark.parametrize("closing", ["withdraw", "invalidate"])
def test_appeals_merged_into_one_closed_unanswered_go_back_to_triage(api, closing):
    from sqlalchemy import select

    from appealflow.models.appeals.appeal import Appeal, AppealEvent
    from appealflow.models.storage.db import session_scope
    from appealflow.settings import get_settings

    parent, version = appeal_in("dispatched" if closing == "withdraw" else "triage")
    children = [appeal_in("triage") for _ in range(2)]
    for child, child_version in children:
        merged = api.post(f"/staff/appeals/{child}/merge", json={"version": child_version, "parent": parent},
                          headers=api.staff["dispatcher"])
        assert merged.status_code == 200, merged.text
    if closing == "withdraw":
        closed = api.post(f"/appeals/{parent}/withdraw", json={"reason": "已自行解决"},
                          headers={"X-Access-Token": _requester_token(api, parent)})
    else:
        closed = api.post(f"/staff/appeals/{parent}/invalidate", json={"version": version, "reason": "测试数据"},
                          headers=api.staff["dispatcher"])
    assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
    with session_scope(get_settings().sqlalchemy_url) as session:
        rows = session.execute(select(Appeal.code, Appeal.status, Appeal.parent_id).where(
            Appeal.code.in_([c for c, _ in children]))).all()
        assert {(code, status, parent_id) for code, status, parent_id in rows} == \
            {(c, "triage", None) for c, _ in children}
        kinds = session.execute(select(AppealEvent.kind, AppealEvent.detail).join(
            Appeal, Appeal.id == AppealEvent.appeal_id).where(Appeal.code == children[0][0])).all()
    assert [k for k, _ in kinds][-1] == "release" and kinds[-1][1]["parent"] == parent
    # Back in the dispatcher's hands, and placed like any appeal in triage.
    current = api.get(f"/staff/appeals/{children[0][0]}", headers=api.staff["dispatcher"]).json()
    placed = api.post(f"/staff/appeals/{children[0][0]}/dispatch",
                      json={"version": current["version"], "department": HOME}, headers=api.staff["dispatcher"])
    assert placed.status_code == 200 and placed.json()["status"] == "dispatched"
    # The requester's own view never shows the staff's reason.
    public = api.get(f"/appeals/{children[0][0]}", headers={"X-Access-Token": _requester_token(api, children[0][0])})
    assert public.status_code == 200 and "主件" not in public.text


def test_a_merged_appeal_hears_what_its_parent_hears(api):
    from sqlalchemy import select

    from appealflow.models.appeals.appeal import Appeal
    from appealflow.models.storage.db import session_scope
    from appealflow.models.telling.outbox import Notification
    from appealflow.settings import get_settings

    parent, parent_version = appeal_in("in_progress")
    child, child_version = appeal_in("triage")
    merged = api.post(f"/staff/appeals/{child}/merge", json={"version": child_version, "parent": parent},
                      headers=api.staff["dispatcher"])
    assert merged.status_code == 200 and merged.json()["status"] == "merged"
    replied = api.post(f"/staff/appeals/{parent}/reply", json={"version": parent_version, "text": "已修复"},
                       headers=api.staff["handler"])
    assert replied.status_code == 200
    with session_scope(get_settings().sqlalchemy_url) as session:
        told = set(session.execute(select(Appeal.code).join(Notification, Notification.appeal_id == Appeal.id).where(
            Notification.recipient == "requester", Notification.event == "replied")).scalars())
    assert told == {parent, child}
