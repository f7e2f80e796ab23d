"""The supervisor's figures: the three rates through the API equal a direct SQL computation on the
same history; lists, hot topics, CSV; and who may read them."""

import codecs
import csv
import io
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from appealflow.api.exports import XLSX
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings
from tests.conftest import on_both, on_sqlite
from tests.staff import ELSEWHERE, HOME, appeal_in

DIRECT_SQL = """
SELECT a.department_code AS department,
       COUNT(*) AS dispatched,
       SUM(CASE WHEN acc.at <= a.accept_due_at AND (a.contact_due_at IS NULL OR con.at <= a.contact_due_at)
                THEN 1 ELSE 0 END) AS responded
FROM appeal a
LEFT JOIN (SELECT appeal_id, MIN(at) AS at FROM appeal_event WHERE kind = 'accept' GROUP BY appeal_id) acc
       ON acc.appeal_id = a.id
LEFT JOIN (SELECT appeal_id, MIN(at) AS at FROM appeal_event WHERE kind = 'contact' GROUP BY appeal_id) con
       ON con.appeal_id = a.id
WHERE a.dispatched_at >= :start AND a.dispatched_at < :end AND a.department_code IS NOT NULL
GROUP BY a.department_code
"""
RATINGS_SQL = """
SELECT department_code AS department, COUNT(*) AS rated,
       SUM(CASE WHEN rated_solved THEN 1 ELSE 0 END) AS solved,
       SUM(CASE WHEN rated_satisfaction IN ('satisfied', 'basically_satisfied') THEN 1 ELSE 0 END) AS satisfied
FROM appeal WHERE rated_at >= :start AND rated_at < :end AND department_code IS NOT NULL
GROUP BY department_code
"""


@pytest.fixture
def api(staff_api):
    return staff_api


def _act(api, role, code, action, version, **body):
    response = api.post(f"/staff/appeals/{code}/{action}", json={"version": version, **body},
                        headers=api.staff[role])
    assert response.status_code == 200, response.text
    return response.json()["version"]


def _rate(api, code, solved, satisfaction):
    from appealflow.models.appeals.tracking import access_token

    token = access_token(get_settings().signing_key(), code)
    response = api.post(f"/appeals/{code}/rating", params={"token": token},
                        json={"solved": solved, "satisfaction": satisfaction})
    assert response.status_code == 200, response.text


def seed_history(api) -> None:
    """Two departments' month: on-time and late acceptances, replies, ratings of every kind."""

    ratings = [(True, "satisfied"), (True, "basically_satisfied"), (False, "unsatisfied"), (True, "satisfied"),
               (False, "basically_satisfied")]
    for department, handler in ((HOME, "handler"), (ELSEWHERE, "other_handler")):
        for n in range(6):
            late = n % 3 == 0
            code, v = appeal_in("dispatched", department=department,
                                due_in=timedelta(seconds=-60) if late else timedelta(days=5))
            v = _act(api, handler, code, "accept", v)
            if n == 5:
                _act(api, handler, code, "return", v, reason="不属于本单位")
                continue
            v = _act(api, handler, code, "contact", v)
            v = _act(api, handler, code, "reply", v, text="已处理")
            if n < len(ratings) and (department == HOME or n % 2 == 0):
                _rate(api, code, *ratings[n])


@on_both
def test_the_three_rates_match_a_direct_sql_computation(api):
    seed_history(api)
    start, end = utcnow() - timedelta(days=1), utcnow() + timedelta(minutes=1)
    response = api.get("/supervision/rates", params={"start": start.isoformat(), "end": end.isoformat()},
                       headers=api.staff["supervisor"])
    assert response.status_code == 200, response.text
    body = response.json()
    by_department = {row["department"]: row for row in body["rows"]}
    assert set(body["formulas"]) >= {"response_rate", "resolution_rate", "satisfaction_rate", "on_time_rate"}

    params = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
    with session_scope(get_settings().sqlalchemy_url) as session:
        responded = {r.department: r for r in session.execute(text(DIRECT_SQL), params)}
        rated = {r.department: r for r in session.execute(text(RATINGS_SQL), params)}
    assert set(responded) == {HOME, ELSEWHERE}
    for department in (HOME, ELSEWHERE):
        api_row, sql = by_department[department], responded[department]
        assert api_row["dispatched"] == sql.dispatched == 5  # the sixth was returned: no longer theirs
        assert api_row["response_rate"] == round(sql.responded / sql.dispatched, 4)
        ratings = rated[department]
        assert api_row["resolution_rate"] == round(ratings.solved / ratings.rated, 4)
        assert api_row["satisfaction_rate"] == round(ratings.satisfied / ratings.rated, 4)
    # Figures a person can check by hand: 2 of the 5 kept were accepted late; 4 of 5 ratings content.
    assert by_department[HOME]["response_rate"] == round(3 / 5, 4)
    assert by_department[HOME]["satisfaction_rate"] == round(4 / 5, 4)
    assert by_department[HOME]["resolution_rate"] == round(3 / 5, 4)
    assert by_department[HOME]["reopens"] == 1 and by_department[HOME]["returns"] == 1


def test_lists_hot_topics_and_csv(api):
    late, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
    for _ in range(5):
        appeal_in("dispatched")
    overdue = api.get("/supervision/overdue", headers=api.staff["supervisor"]).json()["rows"]
    assert [row["code"] for row in overdue] == [late] and overdue[0]["hours_late"] >= 2.9
    assert "13912345678" not in str(overdue)
    hot = api.get("/supervision/hot-topics", params={"min_count": 5}, headers=api.staff["supervisor"]).json()
    assert hot["rows"][0]["category"] == "urban_management" and hot["rows"][0]["appeals"] == 6
    exported = api.get("/supervision/overdue", params={"format": "csv"}, headers=api.staff["supervisor"])
    assert exported.headers["content-type"].startswith("text/csv")
    # Excel in a Chinese locale needs the byte-order mark; headers and names are the reader's.
    assert exported.content.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    assert rows[0][:3] == ["受理编号", "状态", "部门"]
    mine = next(r for r in rows if r[0] == late)
    assert mine[1] == "已签收" and mine[2] == "市城市管理局" and "urban_management" not in mine
    english = api.get("/supervision/overdue", params={"format": "csv", "lang": "en"}, headers=api.staff["supervisor"])
    assert english.content.decode("utf-8-sig").splitlines()[0].startswith("Code,Status,Department")
    book = api.get("/supervision/hot-topics", params={"format": "xlsx", "min_count": 5},
                   headers=api.staff["supervisor"])
    assert book.status_code == 200 and book.headers["content-type"].startswith(XLSX)
    sheet = load_workbook(io.BytesIO(book.content), read_only=True).active
    cells = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert cells[0][:4] == ["类别", "区", "街道", "诉求数"]
    assert cells[1][0] == "城市管理" and cells[1][3] == 6  # names, and numbers stay numbers
    assert api.get("/supervision/rates", params={"format": "pdf"}, headers=api.staff["supervisor"]).status_code == 422
    # The lists take the dashboard's filters: another department's overdue list is empty.
    assert api.get("/supervision/overdue", params={"department": ELSEWHERE},
                   headers=api.staff["supervisor"]).json()["rows"] == []
    assert api.get("/supervision/at-risk", params={"district": "no_such_district"},
                   headers=api.staff["supervisor"]).json()["rows"] == []


def test_decisions_waiting_for_a_supervisor_export_as_one_table(api):
    asked, _ = appeal_in("accepted", extension=True)
    exported = api.get("/supervision/pending", params={"format": "csv"}, headers=api.staff["supervisor"])
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    mine = next(r for r in rows if r["受理编号"] == asked)
    assert mine["待决事项"] == "延期申请" and mine["理由或标题"] == "需要现场勘查" and mine["起始时间"][:2] == "20"
    assert api.get("/supervision/pending", headers=api.staff["supervisor"]).json()["extensions"]


def test_a_department_with_nothing_due_yet_has_no_response_rate_rather_than_zero(api):
    appeal_in("dispatched", department=ELSEWHERE)  # dispatched just now: accept due in two hours
    rows = api.get("/supervision/rates", headers=api.staff["supervisor"]).json()["rows"]
    fresh = next(r for r in rows if r["department"] == ELSEWHERE)
    assert fresh["dispatched"] == 1 and fresh["response_due"] == 0 and fresh["response_rate"] is None
    late, _ = appeal_in("dispatched", department=ELSEWHERE, due_in=timedelta(hours=-1))  # past its accept deadline
    rows = api.get("/supervision/rates", headers=api.staff["supervisor"]).json()["rows"]
    assert next(r for r in rows if r["department"] == ELSEWHERE)["response_rate"] == 0.0


def test_only_supervisors_read_the_figures(api):
    for role in ("handler", "dispatcher", "operator", "department_head"):
        assert api.get("/supervision/rates", headers=api.staff[role]).status_code == 403, role
    assert api.get("/supervision/overdue").status_code == 401


@on_both
def test_overdue_means_one_thing_in_the_queue_its_filter_and_supervision(api):
    """Open, past the resolve deadline, and not waiting on the requester: a paused clock is not late."""
    late, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
    paused, _ = appeal_in("waiting_requester", due_in=timedelta(hours=-3))
    on_time, _ = appeal_in("in_progress")
    me = api.staff["handler"]
    flags = {i["code"]: i["overdue"] for i in api.get("/queue", headers=me).json()["items"]}
    assert flags == {late: True, paused: False, on_time: False}
    listed = {i["code"] for i in api.get("/queue", params={"overdue": True}, headers=me).json()["items"]}
    assert listed == {late}
    not_listed = {i["code"] for i in api.get("/queue", params={"overdue": False}, headers=me).json()["items"]}
    assert not_listed == {paused, on_time}
    supervised = api.get("/supervision/overdue", headers=api.staff["supervisor"]).json()["rows"]
    assert [row["code"] for row in supervised] == [late]
    rates = {row["department"]: row for row in api.get("/supervision/rates", headers=api.staff["supervisor"])
             .json()["rows"]}
    assert rates[HOME]["overdue"] == 1 and rates[HOME]["backlog"] == 3
    assert rates[HOME]["open_late"] == 1  # the on-time rate counts the same appeals as late


def test_a_second_rating_of_the_same_reply_is_refused_as_already_rated(api):
    from appealflow.models.appeals.tracking import access_token

    # Unsatisfied reopens to the same department (重办): dispatched again, with new deadlines.
    for first, status_after in (("satisfied", "closed"), ("unsatisfied", "dispatched")):
        code, _ = appeal_in("replied")
        token = access_token(get_settings().signing_key(), code)
        rated = api.post(f"/appeals/{code}/rating", params={"token": token},
                         json={"solved": first != "unsatisfied", "satisfaction": first})
        assert rated.status_code == 200 and rated.json()["status"] == status_after
        again = api.post(f"/appeals/{code}/rating", params={"token": token},
                         json={"solved": True, "satisfaction": "satisfied"})
        assert again.status_code == 409, again.text
        assert "already rated" in again.json()["detail"] and again.json()["status"] == status_after


def test_a_deadline_across_a_day_boundary_keeps_the_seconds_left_that_day():
    """Received at 16:59:30.5 with two working hours to go: 29.5 s that day, the rest the next day,
    due at 10:59:30.5 (rounding the half minute down made it 11:00, up to a minute late)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from appealflow.models.clocks.calendar import WorkingCalendar
    from appealflow.models.clocks.deadlines import Duration

    zone = ZoneInfo("Asia/Shanghai")
    calendar = WorkingCalendar(zone=zone, base=lambda day: day.weekday() < 5)
    received = datetime(2026, 11, 26, 16, 59, 30, 500000, tzinfo=zone)  # a Thursday
    due = calendar.add(received, Duration.parse("2h"), working=True)
    assert due == datetime(2026, 11, 27, 10, 59, 30, 500000, tzinfo=zone).astimezone(UTC)
    assert calendar.working_time_between(received, due) == timedelta(hours=2)
    friday_close = datetime(2026, 11, 27, 16, 59, 59, 999999, tzinfo=zone)
    assert calendar.add_working_minutes(friday_close, 1) == datetime(
        2026, 11, 30, 9, 0, 59, 999999, tzinfo=zone).astimezone(UTC)  # over the weekend, to the microsecond


@on_sqlite
def test_exported_titles_that_look_like_formulas_open_as_text(api):
    from sqlalchemy import update

    from appealflow.api.exports import FORMULA_STARTS
    from appealflow.models.appeals.appeal import Appeal

    titles = ["=HYPERLINK(\"http://x.test\",\"点我\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1+1", "\r=1+1",
              "路灯不亮"]
    codes = []
    for title in titles:
        code, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
        with session_scope(get_settings().sqlalchemy_url) as session:
            session.execute(update(Appeal).where(Appeal.code == code).values(title=title))
        codes.append(code)
    exported = api.get("/supervision/overdue", params={"format": "csv", "lang": "en"},
                       headers=api.staff["supervisor"])
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    by_code = {row["Code"]: row for row in rows}
    assert set(codes) <= set(by_code)
    for title, code in zip(titles, codes, strict=True):
        shown = by_code[code]["Title"]
        assert shown == ("'" + title if title.startswith(FORMULA_STARTS) else title), (title, shown)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(FORMULA_STARTS), f"a cell would run as a formula: {cell!r}"
    book = api.get("/supervision/overdue", params={"format": "xlsx"}, headers=api.staff["supervisor"])
    sheet = load_workbook(io.BytesIO(book.content), read_only=True).active
    for row in sheet.iter_rows(values_only=True):
        for cell in row:
            assert not (isinstance(cell, str) and cell.startswith(FORMULA_STARTS)), cell


def test_supervision_orders_are_a_supervisors_answered_once_by_their_department_and_counted(api):
    code, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
    tomorrow = (utcnow() + timedelta(days=1)).isoformat()
    order = {"department": HOME, "appeals": [code], "subject": "请说明超期原因", "due": tomorrow}
    assert api.post("/supervision/orders", json=order, headers=api.staff["handler"]).status_code == 403
    past = api.post("/supervision/orders", json={**order, "due": "2020-01-01"}, headers=api.staff["supervisor"])
    assert past.status_code == 422 and "due" in past.text
    unknown = api.post("/supervision/orders", json={**order, "appeals": ["000000-NOPE"]},
                       headers=api.staff["supervisor"])
    assert unknown.status_code == 422 and "000000-NOPE" in unknown.text
    made = api.post("/supervision/orders", json=order, headers=api.staff["supervisor"])
    assert made.status_code == 201, made.text
    order_id = made.json()["id"]
    mine = api.get("/staff/orders", headers=api.staff["handler"]).json()
    assert [o["id"] for o in mine] == [order_id]
    assert api.get("/staff/orders", headers=api.staff["other_handler"]).json() == []
    assert api.post(f"/staff/orders/{order_id}/answer", json={"answer": "已办结"},
                    headers=api.staff["other_handler"]).status_code == 404  # not theirs
    answered = api.post(f"/staff/orders/{order_id}/answer", json={"answer": "已办结"}, headers=api.staff["handler"])
    assert answered.status_code == 200 and answered.json()["on_time"] is True
    assert api.post(f"/staff/orders/{order_id}/answer", json={"answer": "again"},
                    headers=api.staff["department_head"]).status_code == 409
    figures = api.get("/supervision/orders", headers=api.staff["supervisor"]).json()["rows"]
    counted = {r["department"]: r for r in figures}
    assert counted[HOME]["issued"] == counted[HOME]["answered_on_time"] == 1 and counted[HOME]["open_late"] == 0
    kinds = [e["kind"] for e in api.get(f"/staff/appeals/{code}", headers=api.staff["handler"]).json()["history"]]
    assert kinds[-2:] == ["supervision_order", "order_answered"]


@on_both
def test_rates_and_their_appeals_follow_the_filters(api):
    here, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
    there, _ = appeal_in("accepted", due_in=timedelta(hours=-3))
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.execute(text("UPDATE appeal SET district = 'laoshan', street = NULL WHERE code = :c"), {"c": there})
    rows = api.get("/supervision/rates", params={"district": "shinan"}, headers=api.staff["supervisor"]).json()["rows"]
    assert next(r for r in rows if r["department"] == HOME)["overdue"] == 1
    listed = api.get("/supervision/appeals", params={"measure": "overdue", "district": "shinan", "department": HOME},
                     headers=api.staff["supervisor"]).json()["rows"]
    assert [r["code"] for r in listed] == [here]
    everywhere = api.get("/supervision/appeals", params={"measure": "overdue"}, headers=api.staff["supervisor"])
    assert {r["code"] for r in everywhere.json()["rows"]} == {here, there}
    assert api.get("/supervision/appeals", params={"measure": "nonsense"},
                   headers=api.staff["supervisor"]).status_code == 422
    assert api.get("/supervision/rates", params={"district": "Robert'); DROP"},
                   headers=api.staff["supervisor"]).status_code == 422


def test_routing_quality_counts_what_routing_placed_sent_to_triage_and_saw_corrected(api):
    """Six appeals received on one day long ago (no other test's appeals in that window): routing
    placed four (two by the model v7, two by the rules) and sent two to triage; one placed appeal was
    returned and dispatched again, one merged. The figures, the API and the page agree."""
    from datetime import UTC, datetime, timedelta

    from appealflow.models.appeals.appeal import AppealEvent
    from appealflow.models.appeals.intake import NewAppeal, receive
    from appealflow.models.oversight.routing_quality import routing_quality

    day = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)
    story = [("route", {"routed_by": "model", "model_version": "v7", "department": "housing"}, []),
             ("route", {"routed_by": "model", "model_version": "v7", "department": "housing"},
              [("return", {"department": "housing"}), ("dispatch", {"department": "urban_management"})]),
             ("route", {"routed_by": "rule", "department": "urban_management"}, [("merge", {"parent": "X"})]),
             ("route", {"routed_by": "rule", "department": "urban_management"}, []),
             ("triage", {"routed_by": "rule"}, [("dispatch", {"department": "housing"})]),
             ("triage", {"routed_by": "model", "model_version": "v7"}, [])]
    with session_scope(get_settings().sqlalchemy_url) as session:
        for n, (decision, detail, later) in enumerate(story):
            at = day + timedelta(minutes=n)
            appeal = receive(session, NewAppeal(channel="web", appeal_type="complaint", priority="normal",
                                                title="路灯不亮", text="路灯坏了", category_code="urban_management",
                                                requester_phone="13900001111"), now=at, actor="requester")
            session.add(AppealEvent(appeal_id=appeal.id, kind=decision, actor="system", at=at, detail=detail))
            for k, (kind, more) in enumerate(later, 1):
                session.add(AppealEvent(appeal_id=appeal.id, kind=kind, actor="staff:x", at=at + timedelta(hours=k),
                                        detail=more))
        session.flush()
        figures = routing_quality(session, day, day + timedelta(days=1))
    assert {k: figures["overall"][k] for k in ("decided", "auto", "triage", "corrected")} == \
        {"decided": 6, "auto": 4, "triage": 2, "corrected": 2}
    assert figures["overall"]["corrected_share"] == 0.5 and figures["overall"]["triage_share"] == 0.3333
    models = {r["key"]: (r["auto"], r["triage"], r["corrected"]) for r in figures["model"]}
    assert models == {"v7": (2, 1, 1), "rules": (2, 1, 1)}
    departments = {r["key"]: (r["decided"], r["corrected"]) for r in figures["department"]}
    assert departments == {"housing": (3, 1), "urban_management": (2, 1), "-": (1, 0)}

    shown = api.get("/supervision/routing-quality", params={"start": "2025-03-03", "end": "2025-03-03"},
                    headers=api.staff["supervisor"])
    assert shown.status_code == 200 and shown.json()["overall"]["decided"] == 6
    assert api.get("/supervision/routing-quality", headers=api.staff["dispatcher"]).status_code == 403
    assert api.get("/supervision/routing-quality", params={"start": "03/03"},
                   headers=api.staff["supervisor"]).status_code == 422

    from tests.test_pages import _signed_in, page

    html = page(_signed_in(str(api.base_url), "supervisor"), "/supervise/routing",
                params={"start": "2025-03-03", "end": "2025-03-03"})
    assert 'id="corrected-share">50.0%' in html and "关键词规则" in html and "城市管理" in html
