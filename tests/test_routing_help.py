"""Help for the people who route and answer: the suggestions routing recorded and the open appeals
that are probably the same matter (dispatchers only), and the policy Q&A base searched while a
citizen types or an operator is on the line; on real e5 embeddings, through the running API."""


from sqlalchemy import select, update

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.routing.classifier import embedder
from appealflow.models.routing.policy_qa import SAMPLE_QA_BASE, import_base, parse
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.conftest import on_postgresql, on_sqlite

BASE = SAMPLE_QA_BASE


def _appeal(title: str, text: str, street: str = "badaguan") -> str:
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal = receive(session, NewAppeal(
            channel="web", appeal_type="complaint", priority="normal", title=title, text=text, district="shinan",
            street=street, requester_name="钱小红", requester_phone="13800001111"), now=utcnow(), actor="requester")
        return appeal.code


@on_sqlite
def test_dispatchers_see_what_routing_suggested_and_the_probable_duplicates(staff_api):
    first = _appeal("工地夜间施工噪音", "居庸关路12号旁边的工地每天夜里施工到凌晨，噪音很大")
    same = _appeal("晚上施工太吵", "居庸关路12号那个工地晚上一直施工，吵得没法睡觉", street="zhongshanlu")
    _appeal("路灯不亮", "湘潭路菜市场门口的路灯坏了一个月")  # same district, another matter and place
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == first)).scalar_one()
        # Routing could not place it: in triage, with what it suggested, as the dispatch flow records it.
        session.execute(update(Appeal).where(Appeal.id == appeal_id).values(status="triage"))
        session.add(AppealEvent(appeal_id=appeal_id, kind="triage", actor="system:routing", at=utcnow(),
                                detail={"suggestions": [{"department": "shinan_badaguan", "category": "noise",
                                                         "probability": 0.46, "why": "施工 / construction",
                                                         "keywords": ["施工"]}]}))

    answer = staff_api.get(f"/routing/suggestions/{first}", headers=staff_api.staff["dispatcher"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [d["code"] for d in body["duplicates"]] == [same]
    assert body["duplicates"][0]["why"].startswith(f"疑似与 {same} 为同一事项 / probably the same matter as {same}")
    assert body["suggestions"] == [{"department": "shinan_badaguan", "category": "noise", "confidence": 0.46,
                                    "reason": "施工 / construction", "keywords": ["施工"]}]
    # A handler has no business routing; a code outside anyone's records is not found.
    assert staff_api.get(f"/routing/suggestions/{first}", headers=staff_api.staff["handler"]).status_code == 403
    assert staff_api.get(f"/routing/suggestions/{first}").status_code == 401
    assert staff_api.get("/routing/suggestions/261128-ZZZZZZZ",
                         headers=staff_api.staff["dispatcher"]).status_code == 404

    # On the dispatcher's page: the duplicate is shown with its evidence and merged with one click,
    # once it is with a department (an appeal joins one being handled).
    from tests.test_pages import Form, _signed_in, page

    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(update(Appeal).where(Appeal.code == same).values(status="dispatched",
                                                                         department_code="shinan_badaguan"))

    desk = _signed_in(str(staff_api.base_url).rstrip("/"), "dispatcher")
    shown = page(desk, f"/work/appeals/{first}")
    assert f'id="merge-into-{same}"' in shown and "居庸关路" in shown
    form = shown[shown.index('<ul id="duplicates"'):]
    hidden = Form(form[:form.index("</form>") + 7]).hidden
    merged = desk.post(f"/work/appeals/{first}/merge", data=hidden, follow_redirects=False)
    assert merged.status_code == 303, merged.text[:300]
    with session_scope(get_settings().sqlalchemy_url) as session:
        status, parent = session.execute(select(Appeal.status, Appeal.parent_id).where(Appeal.code == first)).one()
        parent_code = session.execute(select(Appeal.code).where(Appeal.id == parent)).scalar_one()
    assert (status, parent_code) == ("merged", same)


@on_postgresql
def test_the_policy_base_answers_while_citizens_type_and_hands_over_when_nothing_is_close(staff_api):
    entries = parse(BASE.read_text(encoding="utf-8"), "json")
    with session_scope(get_settings().sqlalchemy_url) as session:
        import_base(session, entries, embedder(get_settings().embedding_backend).embed)

    found = staff_api.get("/policy/search", params={"q": "灵活就业养老保险怎么交"})  # no sign-in needed
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["found"] and body["handover"] is None and 1 <= len(body["answers"]) <= 3
    assert body["answers"][0]["question"] == "灵活就业人员怎么缴纳养老保险？"
    assert body["answers"][0]["source"]

    nothing = staff_api.get("/policy/search", params={"q": "火星上的天气怎么样"}).json()
    assert not nothing["found"] and nothing["answers"] == [] and "person" in nothing["handover"]
    assert staff_api.get("/policy/search", params={"q": "x"}).status_code == 422
    assert staff_api.get("/policy/search", params={"q": "养老保险", "limit": 50}).status_code == 422


@on_sqlite
def test_an_operator_answers_a_consultation_on_the_spot_and_the_requester_rates_it(staff_api):
    entries = parse(BASE.read_text(encoding="utf-8"), "json")
    with session_scope(get_settings().sqlalchemy_url) as session:
        import_base(session, entries, embedder(get_settings().embedding_backend).embed)
    operator = staff_api.staff["operator"]
    call = {"channel": "hotline", "type": "consultation", "title": "灵活就业交社保", "text": "灵活就业养老保险怎么交",
            "requester": {"name": "孙女士", "phone": "13900002222"}}
    created = staff_api.post("/appeals", json=call, headers=operator).json()
    code, token = created["code"], created["access_token"]
    best = staff_api.get("/policy/search", params={"q": call["text"]}).json()["answers"][0]
    version = staff_api.get(f"/staff/appeals/{code}", headers=operator).json()["version"]

    # A handler has no say before any routing; an entry that does not exist is named as the problem.
    assert staff_api.post(f"/staff/appeals/{code}/answer", json={"version": version, "text": "x"},
                          headers=staff_api.staff["handler"]).status_code in (403, 404)
    missing = staff_api.post(f"/staff/appeals/{code}/answer", headers=operator,
                             json={"version": version, "text": best["answer"], "policy_answer": 999999})
    assert missing.status_code == 422 and "policy_answer" in missing.text
    answered = staff_api.post(f"/staff/appeals/{code}/answer", headers=operator,
                              json={"version": version, "text": best["answer"], "policy_answer": best["id"]})
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "replied"

    # The requester sees the answer and its source, and rates it as any reply.
    tracked = staff_api.get(f"/appeals/{code}", headers={"X-Access-Token": token})
    assert best["answer"] in tracked.text and best["source"] in tracked.text
    form = staff_api.get(f"/appeals/{code}/rating", headers={"X-Access-Token": token}).json()
    assert form["can_rate"] and form["reply"] == best["answer"]

    # Only a consultation is answered on the spot: a complaint goes to a department.
    complaint = staff_api.post("/appeals", json={**call, "type": "complaint"}, headers=operator).json()
    refused = staff_api.post(f"/staff/appeals/{complaint['code']}/answer", headers=operator,
                             json={"version": 1, "text": "已答复"})
    assert refused.status_code == 422 and "consultation" in refused.text


@on_sqlite
def test_an_operator_answers_five_consultations_while_workers_run_without_a_409(staff_api, stack):
    """The consultation an operator holds to answer on the spot is not dispatched from under them:
    with a dispatch worker running (it routes a new appeal within about a second), five in a row are
    answered at the version filed. 'Route it now' hands one to dispatch at once."""
    import time

    stack.start_worker()
    operator = staff_api.staff["operator"]
    call = {"channel": "hotline", "type": "consultation", "title": "公积金提取", "text": "租房提取公积金需要什么材料",
            "requester": {"name": "周先生", "phone": "13900003333"}, "answer_now": True}
    codes = [staff_api.post("/appeals", json=call, headers=operator).json()["code"] for _ in range(5)]
    routed = staff_api.post("/appeals", json={**call, "answer_now": False}, headers=operator).json()["code"]

    def status(code: str) -> str:
        return staff_api.get(f"/staff/appeals/{code}", headers=operator).json()["status"]

    deadline = time.monotonic() + 60
    while status(routed) == "received" and time.monotonic() < deadline:  # the worker is at work
        time.sleep(0.2)
    assert status(routed) != "received", "the worker never routed the consultation filed to be routed"
    for code in codes:
        assert status(code) == "received", "a held consultation was routed from under its operator"
        answered = staff_api.post(f"/staff/appeals/{code}/answer", headers=operator,
                                  json={"version": 1, "text": "需要租房合同和身份证，可在线办理。"})
        assert answered.status_code == 200, answered.text  # never 409 "someone acted first"

    held = staff_api.post("/appeals", json=call, headers=operator).json()["code"]
    # Only its operator: anyone else cannot see it (404) or may not (403).
    assert staff_api.post(f"/staff/appeals/{held}/route-now", headers=staff_api.staff["dispatcher"]).status_code \
        in (403, 404)
    assert staff_api.post(f"/staff/appeals/{held}/route-now", headers=operator).status_code == 200
    deadline = time.monotonic() + 60
    while status(held) == "received" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status(held) != "received", "route-now did not hand the consultation to dispatch"
    assert staff_api.post(f"/staff/appeals/{held}/route-now", headers=operator).status_code == 409


@on_sqlite
def test_only_an_operators_consultation_can_be_held_for_an_answer(staff_api):
    call = {"channel": "hotline", "type": "complaint", "title": "噪音", "text": "夜间施工噪音",
            "requester": {"phone": "13900004444"}, "answer_now": True}
    refused = staff_api.post("/appeals", json=call, headers=staff_api.staff["operator"])
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "answer_now"]
    web = staff_api.post("/appeals", json={**call, "channel": "web", "type": "consultation"})
    assert web.status_code == 422 and "answer_now" in web.text


def test_bulk_actions_check_and_refuse_each_appeal_on_its_own(staff_api):
    from tests.staff import appeal_in

    triaged = [appeal_in("triage") for _ in range(3)]
    elsewhere, elsewhere_version = appeal_in("accepted")  # not a dispatcher's to dispatch
    body = {"action": "dispatch", "department": "housing",
            "appeals": [{"code": c, "version": v} for c, v in triaged]
            + [{"code": triaged[0][0], "version": triaged[0][1]},  # listed twice: acted on once
               {"code": elsewhere, "version": elsewhere_version}, {"code": "261204-ZZZZZZZ", "version": 1}]}
    stale_code, stale_version = triaged[1]
    with session_scope(get_settings().sqlalchemy_url) as session:  # someone edits one meanwhile
        session.execute(update(Appeal).where(Appeal.code == stale_code).values(version=stale_version + 1))
    answer = staff_api.post("/staff/appeals/bulk", json=body, headers=staff_api.staff["dispatcher"])
    assert answer.status_code == 200, answer.text
    outcome = {r["code"]: r for r in answer.json()["results"]}
    assert len(outcome) == 5 and answer.json()["done"] == 2 and answer.json()["refused"] == 3
    assert outcome[triaged[0][0]]["done"] and outcome[triaged[2][0]]["done"]
    assert outcome[stale_code]["status_code"] == 409 and outcome[stale_code]["version"] == stale_version + 1
    assert outcome[elsewhere]["status_code"] == 404 and outcome["261204-ZZZZZZZ"]["status_code"] == 404
    with session_scope(get_settings().sqlalchemy_url) as session:
        placed = dict(session.execute(select(Appeal.code, Appeal.department_code)
                                      .where(Appeal.code.in_([c for c, _ in triaged]))).all())
    assert placed == {triaged[0][0]: "housing", stale_code: None, triaged[2][0]: "housing"}

    # A handler may not dispatch: each appeal says so; the request itself is sound.
    code, version = appeal_in("triage")
    handler = staff_api.post("/staff/appeals/bulk", headers=staff_api.staff["handler"], json={
        "action": "dispatch", "department": "housing", "appeals": [{"code": code, "version": version}]})
    assert handler.status_code == 200 and handler.json()["results"][0]["status_code"] in (403, 404)
    invalid = staff_api.post("/staff/appeals/bulk", headers=staff_api.staff["dispatcher"], json={
        "action": "invalidate", "appeals": [{"code": code, "version": version}]})
    said = invalid.json()["results"][0]
    assert (said["done"], said["status_code"], said["field"]) == (False, 422, "reason")
    for wrong in ({"action": "dispatch", "appeals": []},
                  {"action": "delete", "appeals": [{"code": code, "version": 1}]},
                  {"action": "dispatch", "appeals": [{"code": "<b>", "version": 1}]}):
        refused = staff_api.post("/staff/appeals/bulk", json=wrong, headers=staff_api.staff["dispatcher"])
        assert refused.status_code == 422, refused.text
    assert staff_api.post("/staff/appeals/bulk", json=body).status_code == 401
