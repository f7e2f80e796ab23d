"""The pages over HTTP on a running API: offline /docs, language, CSRF, the filing form's field
errors and idempotency, escaping, staff sign-in with an HttpOnly cookie, exactly the allowed actions,
a stale form, 404 for another department, masking, the dispatcher's and supervisor's pages, the
public figures, a label for every form field, and a consultation answered on the spot from the policy
base (operator, dispatcher; a handler refused; the answer escaped on the citizen's page). The browser
walks are in tests/browser/."""

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import yaml
from sqlalchemy import func, select, update

from appealflow.models.appeals.appeal import Appeal, AppealEvent
from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.routing.classifier import embedder
from appealflow.models.routing.policy_qa import SAMPLE_QA_BASE, import_base, parse
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.conftest import on_sqlite
from tests.staff import PASSWORD, appeal_in, create_staff, sign_in

LOCALES = Path(__file__).parent.parent / "api" / "pages" / "locales"


class Form(HTMLParser):
    """The fields of a page: which have a label, and every hidden value by name."""

    def __init__(self, html: str):
        super().__init__()
        self.fields: list[str] = []
        self.labelled: set[str] = set()
        self.hidden: dict[str, str] = {}
        self.in_label = 0
        self.text = html
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "label":
            self.in_label += 1
            if a.get("for"):
                self.labelled.add(a["for"])
        if tag in ("input", "select", "textarea"):
            if a.get("type") == "hidden":
                self.hidden[a.get("name", "")] = a.get("value", "")
            elif self.in_label:
                self.labelled.add(a.get("id") or a.get("name", ""))
                self.fields.append(a.get("id") or a.get("name", ""))
            else:
                self.fields.append(a.get("id") or "<no id>")

    def handle_endtag(self, tag):
        if tag == "label":
            self.in_label -= 1

    def unlabelled(self) -> list[str]:
        return [f for f in self.fields if f not in self.labelled]

    def error(self, field: str) -> str:
        """The message shown beside a field (`<p id="FIELD-error">`), or "" when there is none."""
        found = re.search(rf'<p class="field-error" id="{re.escape(field)}-error"[^>]*>(.*?)</p>', self.text, re.S)
        return html.unescape(found.group(1)).strip() if found else ""


def page(client: httpx.Client, url: str, status: int = 200, **kwargs) -> str:
    answer = client.get(url, **kwargs)
    assert answer.status_code == status, (url, answer.status_code, answer.text[:500])
    assert "text/html" in answer.headers["content-type"]
    assert not Form(answer.text).unlabelled(), (url, Form(answer.text).unlabelled())
    return answer.text


def test_catalogues_have_the_same_words():
    zh = yaml.safe_load((LOCALES / "zh.yaml").read_text(encoding="utf-8"))
    en = yaml.safe_load((LOCALES / "en.yaml").read_text(encoding="utf-8"))
    assert set(zh) == set(en)
    assert all(isinstance(v, str) and v for v in [*zh.values(), *en.values()])


@on_sqlite
def test_pages(stack):
    create_staff()
    base = stack.start_api()
    anon = httpx.Client(base_url=base, timeout=30, headers={"Accept-Language": "zh-CN,zh;q=0.9"})

    # /docs: Swagger UI from files the app serves, no CDN.
    docs = anon.get("/docs").text
    assert "/static/docs/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert anon.get("/static/docs/swagger-ui-bundle.js").status_code == 200
    assert anon.get("/static/docs/swagger-ui.css").status_code == 200
    assert anon.get("/static/docs/../../etc/passwd").status_code == 404
    assert anon.get("/static/vendor/plotly.min.js").status_code == 200

    # Language: the browser's choice, and the switch (which a cookie remembers).
    assert "提交诉求" in page(anon, "/")
    assert "File an appeal" in page(anon, "/", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
    assert "File an appeal" in page(anon, "/?lang=en") and "File an appeal" in page(anon, "/")
    page(anon, "/?lang=zh")

    # Filing: CSRF required; field errors beside the fields; what was typed kept and escaped.
    form = Form(page(anon, "/file")).hidden
    refused = anon.post("/file", data={"title": "x"})
    assert refused.status_code == 403
    unagreed = anon.post("/file", data={**form, "type": "complaint", "title": "路灯不亮", "text": "路灯不亮"})
    assert unagreed.status_code == 422 and Form(unagreed.text).error("privacy") == "请先阅读并同意隐私说明。"
    assert "路灯不亮" in unagreed.text  # what was typed stays
    form["privacy"] = "on"
    bad = anon.post("/file", data={**form, "type": "complaint", "title": "", "text": "路灯不亮",
                                   "phone": "not-a-phone", "district": "shinan", "street": "badaguan"})
    assert bad.status_code == 422
    assert 'id="title-error"' in bad.text and 'id="phone-error"' in bad.text and "路灯不亮" in bad.text
    # In the reader's words, never the validation library's English or a regular expression.
    said = Form(bad.text)
    assert said.error("title") == "请填写标题。", said.error("title")
    assert said.error("phone").startswith("手机号码应为数字"), said.error("phone")
    for leak in ("String should", "pattern", "^\\+?", "Value error"):
        assert leak not in bad.text, leak
    english = anon.post("/file?lang=en", data={**form, "type": "complaint", "title": "", "text": "x",
                                               "phone": "not-a-phone", "district": "shinan", "street": "badaguan"})
    assert Form(english.text).error("title") == "Please fill in Title."
    anon.get("/?lang=zh")
    # A text past the body limit: the form again, with the text as far as it came and a message beside it.
    huge = "路灯坏了很久。" * 1500  # 10,500 characters: about 95 KB once url-encoded
    cut = anon.post("/file", data={**form, "type": "complaint", "title": "路灯不亮", "text": huge,
                                   "district": "shinan", "street": "badaguan", "phone": "13912345678"})
    assert cut.status_code == 413 and "text/html" in cut.headers["content-type"]
    assert Form(cut.text).error("text").startswith("内容太长")
    assert "路灯坏了很久。" * 100 in cut.text and 'value="路灯不亮"' in cut.text
    with session_scope(get_settings().sqlalchemy_url) as session:  # nothing filed from a cut form
        assert session.execute(select(func.count()).where(Appeal.text.like("路灯坏了很久%"))).scalar_one() == 0
    # JSON clients keep their 413.
    assert anon.post("/appeals", json={"title": "x", "text": huge * 4}).status_code == 413
    script = "<script>alert('x')</script>"
    body = {**form, "type": "complaint", "title": f"路灯不亮 {script}", "text": "小区门口路灯坏了一个月",
            "district": "shinan", "street": "badaguan", "name": "赵小明", "phone": "13912345678",
            "email": "zhao@example.test", "category": ""}
    first = anon.post("/file", data=body, follow_redirects=False)
    second = anon.post("/file", data=body, follow_redirects=False)  # a double click
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    with session_scope(get_settings().sqlalchemy_url) as session:
        assert session.execute(select(func.count()).where(Appeal.title.like("路灯不亮 <script>%"))).scalar_one() == 1
    filed = page(anon, first.headers["location"])
    code = re.search(r'id="tracking-code">([^<]+)<', filed).group(1)
    link = re.search(r'id="tracking-link" href="([^"]+)"', filed).group(1).replace("&amp;", "&")
    qr = anon.get(re.search(r'id="qr" src="([^"]+)"', filed).group(1).replace("&amp;", "&"))
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg")
    tracked = page(anon, link)
    assert script not in tracked and "&lt;script&gt;" in tracked
    assert page(anon, f"/t/{code}?token=wrong", status=404)
    # A hotline caller follows up with the code and the phone's last four digits, sent in the form's
    # body (never in a URL): read only, masked.
    def look_up(code: str, phone: str, status: int = 200, **params) -> str:
        csrf = Form(page(anon, "/track", **({"params": params} if params else {}))).hidden["csrf"]
        answer = anon.post("/track", data={"csrf": csrf, "code": code, "phone": phone}, params=params)
        assert answer.status_code == status, (code, phone, answer.status_code, answer.text[:300])
        return answer.text

    by_phone = look_up(code.lower(), "5678")
    assert 'id="read-only"' in by_phone and 'id="status"' in by_phone and code in by_phone
    assert "rate-form" not in by_phone and 'name="token"' not in by_phone
    assert "赵小明" not in by_phone and "13912345678" not in by_phone and "zhao@example.test" not in by_phone
    assert script not in by_phone and "&lt;script&gt;" in by_phone
    assert 'id="lookup-refused"' in look_up(code, "1234", 404)
    assert 'id="lookup-refused"' in look_up(code, "12a4", 422)
    assert "Check them" in look_up("X" * 39, "5678", 404, lang="en")  # no such code
    old_link = page(anon, f"/track?code={code}&phone=5678")  # digits in an old link's URL are not read
    assert 'id="read-only"' not in old_link and 'method="post" action="/track"' in old_link
    assert anon.post("/track", data={"code": code, "phone": "5678"}).status_code == 403  # no form token
    anon.cookies.delete("af_lang")
    assert 'id="lookup-refused"' not in page(anon, "/track")
    # A link from a message names the API resource: a browser is sent to the page, a client gets JSON.
    api_path = link.replace("/t/", "/appeals/")
    assert anon.get(api_path, headers={"Accept": "text/html,application/xhtml+xml"},
                    follow_redirects=False).status_code == 303
    assert anon.get(api_path).json()["code"] == code

    # Staff: sign-in sets an HttpOnly, SameSite=Lax cookie.
    handler = httpx.Client(base_url=base, timeout=30, headers={"Accept-Language": "en"})
    assert "/staff/sign-in" in handler.get("/work", follow_redirects=False).headers["location"]
    hidden = Form(page(handler, "/staff/sign-in")).hidden
    wrong = handler.post("/staff/sign-in", data={**hidden, "username": "handler", "password": "nope"})
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    signed = handler.post("/staff/sign-in", data={**hidden, "username": "handler", "password": PASSWORD},
                          follow_redirects=False)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"].lower()
    assert "af_staff=" in cookie and "httponly" in cookie and "samesite=lax" in cookie

    mine, version = appeal_in("dispatched")
    queue = page(handler, "/work")
    assert mine in queue
    detail = page(handler, f"/work/appeals/{mine}")
    shown = set(re.findall(r'id="action-([a-z_]+)"', detail))
    assert shown == {"take", "accept", "return", "add_assist", "note"}, shown  # take: it is in the mailbox
    assert "赵小明" in detail  # the handling department sees who the requester is
    # Places and channels by name in the page's language, never as codes.
    location = re.search(r'id="location">([^<]*)<', detail).group(1)
    assert "Shinan District" in location and "Badaguan" in location and "shinan" not in location, location
    assert re.search(r'id="channel">Online ', detail)
    csrf = Form(detail).hidden["csrf"]
    accepted = handler.post(f"/work/appeals/{mine}/accept", data={"csrf": csrf, "version": version},
                            follow_redirects=False)
    assert accepted.status_code == 303
    stale = handler.post(f"/work/appeals/{mine}/accept", data={"csrf": csrf, "version": version})
    assert stale.status_code == 409 and "Someone acted first" in stale.text
    assert set(re.findall(r'id="action-([a-z_]+)"', stale.text)) >= {"contact", "request_extension"}
    missing = handler.post(f"/work/appeals/{mine}/request_extension",
                           data={"csrf": csrf, "version": version + 1, "extra": "3d"})
    assert missing.status_code == 422 and 'id="reason-error"' in missing.text
    assert handler.post(f"/work/appeals/{mine}/note", data={"version": version + 1, "text": "x"}).status_code == 403

    # Signing out ends the session; `next` only ever names a path on this site.
    hidden = Form(page(handler, "/work")).hidden
    assert handler.post("/staff/sign-out", data={"csrf": hidden["csrf"]}, follow_redirects=False).status_code == 303
    assert "/staff/sign-in" in handler.get("/work", follow_redirects=False).headers["location"]
    hidden = Form(page(handler, "/staff/sign-in")).hidden
    elsewhere = handler.post("/staff/sign-in", data={**hidden, "username": "handler", "password": PASSWORD,
                                                     "next": "//evil.example/x"}, follow_redirects=False)
    assert elsewhere.headers["location"] == "/work"

    # Another department's appeal is not found; the supervisor sees the requester masked.
    other = httpx.Client(base_url=base, timeout=30)
    hidden = Form(page(other, "/staff/sign-in")).hidden
    other.post("/staff/sign-in", data={**hidden, "username": "other_handler", "password": PASSWORD})
    page(other, f"/work/appeals/{mine}", status=404)
    assert page(other, "/supervise", status=404)

    boss = httpx.Client(base_url=base, timeout=30)
    hidden = Form(page(boss, "/staff/sign-in")).hidden
    assert boss.post("/staff/sign-in", data={**hidden, "username": "supervisor", "password": PASSWORD},
                     follow_redirects=False).headers["location"] == "/supervise"
    seen = page(boss, f"/work/appeals/{mine}")
    assert "赵**" in seen and "赵小明" not in seen and "139****5678" in seen
    dashboard = page(boss, "/supervise")
    assert 'id="rates"' in dashboard and "urban_management" in dashboard
    exported = boss.get("/supervise/export/overdue.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    figures = boss.get("/supervise/figures.json").json()
    assert {"rates", "overdue", "at_risk", "pending", "trend", "backlog", "breaches"} <= set(figures)

    # The dispatcher: triage offers dispatch, merge, invalidate; dispatching takes it off the queue.
    desk = httpx.Client(base_url=base, timeout=30)
    hidden = Form(page(desk, "/staff/sign-in")).hidden
    desk.post("/staff/sign-in", data={**hidden, "username": "dispatcher", "password": PASSWORD})
    triaged, triage_version = appeal_in("triage")
    with session_scope(get_settings().sqlalchemy_url) as session:  # what routing records when unsure
        appeal_id = session.execute(select(Appeal.id).where(Appeal.code == triaged)).scalar_one()
        session.add(AppealEvent(appeal_id=appeal_id, kind="triage", actor="system:dispatch", at=utcnow(),
                                from_status="received", to_status="triage", detail={"suggestions": [
                                    {"department": "urban_management", "category": "municipal_facilities",
                                     "probability": 0.41, "why": "text reads as municipal_facilities (41%)",
                                     "keywords": ["路灯", "井盖"]}]}))
    detail = page(desk, f"/work/appeals/{triaged}")
    assert 'id="suggestions"' in detail and re.search(r'<option value="urban_management"[^>]*\sselected>', detail)
    # Why, in the dispatcher's words: the category by name and the keywords the text used; no code.
    why = re.search(r'<ul id="suggestions">.*?</ul>', detail, re.S).group(0)
    assert "内容判为「市政设施」，关键词：路灯、井盖" in why and "municipal_facilities" not in why
    # The picker: suggested departments first, then all of them by pinyin, both names, a filter box.
    picker = detail[detail.index('id="dispatch-department"'):]
    picker = picker[:picker.index("</select>")]
    assert picker.index("urban_management") < picker.index('label="' + "全部部门")
    assert 'id="dispatch-department-filter"' in detail and " / " in picker
    assert set(re.findall(r'id="action-([a-z_]+)"', detail)) == {"dispatch", "merge", "invalidate", "note"}
    sent = desk.post(f"/work/appeals/{triaged}/dispatch", data={
        "csrf": Form(detail).hidden["csrf"], "version": triage_version, "department": "urban_management"},
        follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].startswith("/work?done=")
    assert triaged not in page(desk, "/work")

    # The public page: totals only, no personal data, no appeal text.
    public = page(anon, "/open")
    assert re.search(r'id="total">\d+<', public)
    assert "赵" not in public and "路灯" not in public and "13912345678" not in public
    assert anon.get("/open/figures.json").json()["total"] >= 3


def _signed_in(base: str, username: str, lang: str = "zh-CN") -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60, headers={"Accept-Language": lang})
    hidden = Form(page(client, "/staff/sign-in")).hidden
    signed = client.post("/staff/sign-in", data={**hidden, "username": username, "password": PASSWORD},
                         follow_redirects=False)
    assert signed.status_code == 303, signed.text[:300]
    return client


def _consultation(status: str, *, department: str | None = None, title: str = "灵活就业交社保",
                  text: str = "灵活就业养老保险怎么交") -> tuple[str, int]:
    """A consultation filed on the web, put straight into `status`; its code and version."""
    with session_scope(get_settings().sqlalchemy_url) as session:
        appeal = receive(session, NewAppeal(
            channel="web", appeal_type="consultation", priority="normal", title=title, text=text, district="shinan",
            street="badaguan", requester_name="孙丽", requester_phone="13900002222"), now=utcnow(), actor="requester")
        session.execute(update(Appeal).where(Appeal.id == appeal.id).values(status=status, department_code=department))
        return appeal.code, appeal.version


def _answer_form(html: str, entry: int) -> dict[str, str]:
    """The hidden fields of the form that answers with one policy entry."""
    form = re.search(rf'<form[^>]*/answer"[^>]*>(?:(?!</form>).)*name="policy_answer" value="{entry}"'
                     rf'(?:(?!</form>).)*</form>', html, re.S).group(0)
    return Form(form).hidden


@on_sqlite
def test_a_consultation_is_answered_on_the_spot_from_the_staff_page(stack):
    with session_scope(get_settings().sqlalchemy_url) as session:  # a few entries: embedding is the slow part
        import_base(session, parse(SAMPLE_QA_BASE.read_text(encoding="utf-8"), "json")[:8],
                    embedder(get_settings().embedding_backend).embed)
    base = stack.start_api()
    api = httpx.Client(base_url=base, timeout=60)
    call = {"channel": "hotline", "type": "consultation", "title": "灵活就业交社保", "text": "灵活就业养老保险怎么交",
            "requester": {"name": "孙女士", "phone": "13900002222", "email": "sun@example.test"}}
    created = api.post("/appeals", json=call, headers=sign_in(api, "operator")).json()
    code, token = created["code"], created["access_token"]

    # The operator who took the call sees the best entries with theme, source and valid dates.
    operator = _signed_in(base, "operator")
    shown = page(operator, f"/work/appeals/{code}")
    assert 'id="action-answer"' in shown and 'id="policy-answers"' in shown
    best = api.get("/policy/search", params={"q": f"{call['title']} {call['text']}"}).json()["answers"]
    assert 1 <= len(best) <= 3 and best[0]["question"] == "灵活就业人员怎么缴纳养老保险？"
    assert best[0]["valid_from"] == "2026-01-01"
    assert shown.count('class="policy"') == len(best)
    assert best[0]["question"] in shown and "就业与社会保障" in shown  # the theme by its name
    assert "有效期" in shown and "2026年1月1日" in shown and "长期" in shown
    assert f'id="answer-text-{best[0]["id"]}"' in shown and best[0]["source"] in shown
    # Searching in other words is a plain GET form.
    assert "失业保险金怎么申领？" in page(operator, f"/work/appeals/{code}?q=失业了怎么领失业金")
    assert "Answer on the spot" in page(operator, f"/work/appeals/{code}?lang=en")
    operator.cookies.delete("af_lang")

    # Answered with edited words holding markup: replied, the answer and its source on the page.
    edited = best[0]["answer"] + " <script>alert('x')</script><b>带上身份证</b>"
    hidden = _answer_form(shown, best[0]["id"])
    answered = operator.post(f"/work/appeals/{code}/answer", data={**hidden, "text": edited}, follow_redirects=False)
    assert answered.status_code == 303 and answered.headers["location"].endswith("?notice=answered")
    after = page(operator, answered.headers["location"])
    assert 'id="answered-notice"' in after and "已当场答复" in after
    assert 'data-status="replied"' in after and 'id="action-answer"' not in after
    assert best[0]["source"] in re.search(r'id="answered-source">([^<]*)<', after).group(1)
    assert "<script>alert" not in after and "&lt;script&gt;alert" in after

    # The citizen's tracking page: the answer as text, with its source, and the rating form.
    tracked = page(api, f"/t/{code}?token={token}")
    assert "<script>alert" not in tracked and "<b>带上身份证" not in tracked
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;b&gt;带上身份证" in tracked
    assert best[0]["source"] in tracked and "12345 当场答复" in tracked and 'id="rate-form"' in tracked

    # A dispatcher answers one from triage; a tampered entry is refused in the page's words.
    waiting, _ = _consultation("triage")
    desk = _signed_in(base, "dispatcher")
    shown = page(desk, f"/work/appeals/{waiting}")
    hidden = _answer_form(shown, best[0]["id"])
    refused = desk.post(f"/work/appeals/{waiting}/answer", data={**hidden, "policy_answer": "999999", "text": "x"})
    assert refused.status_code == 422 and 'id="answer-refused"' in refused.text
    assert "政策库中没有这条答复" in refused.text and 'id="action-answer"' in refused.text
    done = desk.post(f"/work/appeals/{waiting}/answer", data={**hidden, "text": best[0]["answer"]},
                     follow_redirects=False)
    # Answered, it leaves the dispatcher's view: the answer's own result is shown once.
    assert done.status_code == 200 and 'data-status="replied"' in done.text and 'id="answered-notice"' in done.text
    assert best[0]["source"] in done.text and 'id="no-actions"' in done.text
    page(desk, f"/work/appeals/{waiting}", status=404)

    # Nothing to answer from: a complaint in triage, or a consultation already dispatched.
    complaint, _ = appeal_in("triage")
    assert 'id="action-answer"' not in page(desk, f"/work/appeals/{complaint}")
    # A handler is never offered it, and is refused in the page's words when they try.
    dispatched, version = _consultation("dispatched", department="urban_management")
    handler = _signed_in(base, "handler")
    shown = page(handler, f"/work/appeals/{dispatched}")
    assert 'id="action-answer"' not in shown and 'id="policy-answers"' not in shown
    csrf = Form(shown).hidden["csrf"]
    tried = handler.post(f"/work/appeals/{dispatched}/answer",
                         data={"csrf": csrf, "version": version, "text": "x", "policy_answer": best[0]["id"]})
    assert tried.status_code == 403 and "只有受理这通电话的话务员或派单员可以当场答复" in tried.text
    other, version = _consultation("received")  # outside a handler's view altogether
    assert handler.post(f"/work/appeals/{other}/answer", data={"csrf": csrf, "version": version,
                                                               "text": "x"}).status_code == 404


def test_an_operator_files_a_hotline_call(stack):
    base = stack.start_api()
    anon = httpx.Client(base_url=base, timeout=30)
    assert "/staff/sign-in" in anon.get("/work/hotline", follow_redirects=False).headers["location"]
    page(_signed_in(base, "handler"), "/work/hotline", status=404)  # an operator's page only

    operator = _signed_in(base, "operator")
    assert 'id="nav-hotline"' in page(operator, "/work")
    shown = page(operator, "/work/hotline")
    assert 'id="priority"' in shown and 'action="/work/hotline"' in shown and "受理热线来电" in shown
    hidden = Form(shown).hidden
    call = {**hidden, "type": "help_request", "priority": "urgent", "title": "老人摔倒 <b>需要帮助</b>",
            "text": "独居老人在家摔倒，邻居发现后打来电话", "district": "shinan", "street": "badaguan",
            "name": "周先生", "phone": "13900003333", "email": "", "category": ""}
    missing = operator.post("/work/hotline", data={**call, "title": ""})
    assert missing.status_code == 422 and 'id="title-error"' in missing.text and "独居老人" in missing.text
    filed = operator.post("/work/hotline", data=call, follow_redirects=False)
    again = operator.post("/work/hotline", data=call, follow_redirects=False)  # a double click
    assert filed.status_code == again.status_code == 303
    assert filed.headers["location"] == again.headers["location"] and "/work/appeals/" in filed.headers["location"]
    code = filed.headers["location"].rsplit("/", 1)[1]
    with session_scope(get_settings().sqlalchemy_url) as session:
        row = session.execute(select(Appeal.channel, Appeal.priority, Appeal.operator_id, Appeal.requester_phone)
                              .where(Appeal.code == code)).one()
    assert tuple(row) == ("hotline", "urgent", "operator", "13900003333")
    detail = page(operator, filed.headers["location"])
    assert "12345热线" in detail and "&lt;b&gt;需要帮助" in detail and "<b>需要帮助" not in detail

    # A consultation: the operator chooses at filing time to answer it on the spot (held from dispatch
    # for them) or to route it (not held).
    assert 'id="handling-answer"' in shown and 'id="handling-route"' in shown
    holds, pages = {}, {}
    for handling in ("answer", "route"):
        consult = operator.post("/work/hotline", follow_redirects=False, data={
            **call, "type": "consultation", "handling": handling, "idempotency_key": f"consult-{handling}-0001"})
        assert consult.status_code == 303, consult.text[:300]
        pages[handling] = consult.headers["location"]
        with session_scope(get_settings().sqlalchemy_url) as session:
            holds[handling] = session.execute(select(Appeal.claimed_by).where(
                Appeal.code == pages[handling].rsplit("/", 1)[1])).scalar_one()
    assert holds == {"answer": "hold:operator", "route": None}
    assert 'id="route-now"' in page(operator, pages["answer"])


def test_no_page_form_puts_phone_digits_in_a_url():
    """A form that asks for a phone number posts it: a GET would put the digits in the URL, where
    access logs and browser history keep them."""
    offending = []
    for template in (Path(__file__).parents[1] / "api" / "pages" / "templates").glob("*.html"):
        for form in re.findall(r"<form\b[^>]*>.*?</form>", template.read_text(encoding="utf-8"), re.S):
            method = re.search(r'method="(\w+)"', form)
            if (method is None or method.group(1).lower() == "get") and re.search(
                    r'name="(phone|phone_last4|requester_phone)"|type="tel"', form):
                offending.append(template.name)
    assert offending == []
