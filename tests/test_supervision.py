"""The supervisor's figures: the three rates through the API equal a direct SQL computation on the
same history; lists, hot topics, CSV; and who may read them."""

from datetime import timedelta

import pytest
from sqlalchemy import text

from appealflow.models.columns import utcnow
from appealflow.models.db import session_scope
from appealflow.settings import get_settings
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
    from appealflow.models.tracking import access_token

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
    assert exported.text.splitlines()[0].startswith("code,status,department")
    assert late in exported.text


def test_only_supervisors_read_the_figures(api):
    for role in ("handler", "dispatcher", "operator", "department_head"):
        assert api.get("/supervision/rates", headers=api.staff[role]).status_code == 403, role
    assert api.get("/supervision/overdue").status_code == 401
