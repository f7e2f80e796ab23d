"""Every bad input found by probing, through HTTP: each is a 4xx naming the field, nothing stored, and
the API stays healthy. One table; the races and the streamed body, which need more than one request,
follow it."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal, AppealAssist, AppealEvent, ExtensionRequest, IdempotencyKey
from appealflow.models.appeals.tracking import access_token
from appealflow.models.storage.db import session_scope
from appealflow.models.telling.outbox import Notification
from appealflow.settings import get_settings
from tests.conftest import on_both, on_postgresql, on_sqlite
from tests.staff import ELSEWHERE, HOME, appeal_in

GOOD = {
    "type": "complaint", "title": "夜间施工噪音", "text": "工地每天夜间施工，噪音扰民。",
    "location": {"district": "shinan", "street": "badaguan"},
    "requester": {"name": "王小明", "phone": "13800001111"},
}
TABLES = (Appeal, AppealEvent, AppealAssist, ExtensionRequest, IdempotencyKey, Notification)


def stored() -> dict[str, int]:
    with session_scope(get_settings().sqlalchemy_url) as session:
        return {t.__tablename__: session.execute(select(func.count()).select_from(t)).scalar_one() for t in TABLES}


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@dataclass
class Given:
    """What the table's requests need: appeals in a few states, their tokens, staff headers."""

    api: Any
    code: str          # dispatched to the handler's department
    version: int
    token: str
    waiting: str       # waiting on the requester
    waiting_version: int
    accepted: str      # accepted, for extension requests and decisions
    accepted_version: int

    def staff(self, role: str) -> dict:
        return self.api.staff[role]


def raw_json(text: str, headers: dict | None = None) -> dict:
    """A request whose JSON is written by hand: \\ud800 is a lone surrogate, legal JSON escape syntax."""
    return {"content": text.encode(), "headers": {"content-type": "application/json", **(headers or {})}}


# (name, request as (method, path, keyword arguments) from Given, expected status, expected loc)
CASES = [
    ("an e-mail address no relay can take",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "requester": {"name": "王", "email": "王@例子.测试"}}}), 422,
     ["body", "requester", "email"]),
    ("non-ASCII token in the query",
     lambda g: ("GET", f"/appeals/{g.code}", {"params": {"token": "令牌" * 8}}), 422, ["query", "token"]),
    ("non-ASCII token in the header",
     lambda g: ("GET", f"/appeals/{g.code}", {"headers": {"X-Access-Token": "é".encode("latin-1") * 32}}), 422,
     ["header", "x-access-token"]),
    ("non-ASCII token answering a question",
     lambda g: ("POST", f"/appeals/{g.waiting}/information", {"params": {"token": "ü" * 32}, "json": {"text": "x"}}),
     422, ["query", "token"]),
    ("NUL in the title",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "title": "噪音\x00扰民"}}), 422, ["body", "title"]),
    ("NUL in the requester's name",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "requester": {"name": "王\x00", "phone": "13800001111"}}}),
     422, ["body", "requester", "name"]),
    ("NUL in the address",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "location": {"address": "\x00"}}}), 422,
     ["body", "location", "address"]),
    ("NUL in a note",
     lambda g: ("POST", f"/staff/appeals/{g.code}/note", {"json": {"version": g.version, "text": "a\x00b"},
                                                          "headers": g.staff("handler")}), 422, ["body", "text"]),
    ("NUL in the requester's answer",
     lambda g: ("POST", f"/appeals/{g.waiting}/information",
                {"params": {"token": access_token(get_settings().signing_key(), g.waiting)},
                 "json": {"text": "3号楼\x00"}}), 422, ["body", "text"]),
    ("NUL in a sign-in form",
     lambda g: ("POST", "/auth/token", {"data": {"username": "handler\x00", "password": "x"}}), 422,
     ["body", "username"]),
    ("NUL in the tracking path",
     lambda g: ("GET", f"/appeals/{g.code}%00", {"params": {"token": g.token}}), 422, ["path"]),
    ("NUL in the staff path",
     lambda g: ("GET", f"/staff/appeals/%00{g.code}", {"headers": g.staff("handler")}), 422, ["path"]),
    ("NUL in the queue search",
     lambda g: ("GET", "/queue", {"params": {"q": "路灯\x00"}, "headers": g.staff("handler")}), 422, ["query", "q"]),
    ("a date that is not a date",
     lambda g: ("GET", "/supervision/rates", {"params": {"start": "2026-13-45"}, "headers": g.staff("supervisor")}),
     422, ["query", "start"]),
    ("a period that ends before it starts",
     lambda g: ("GET", "/supervision/rates", {"params": {"start": "2026-11-02", "end": "2026-11-01"},
                                              "headers": g.staff("supervisor")}), 422, ["query", "start"]),
    ("a cursor with a time without zone",
     lambda g: ("GET", "/queue", {"params": {"cursor": cursor_of(["2026-11-01T08:00:00", 1])},
                                  "headers": g.staff("handler")}), 422, ["query", "cursor"]),
    ("a cursor with an id past 32 bits",
     lambda g: ("GET", "/queue", {"params": {"cursor": cursor_of(["2026-11-01T08:00:00+00:00", 2**40])},
                                  "headers": g.staff("handler")}), 422, ["query", "cursor"]),
    ("a cursor with a year the zone cannot shift",
     lambda g: ("GET", "/queue", {"params": {"cursor": cursor_of(["0001-01-01T00:00:00+14:00", 1])},
                                  "headers": g.staff("supervisor")}), 422, ["query", "cursor"]),
    ("a cursor that is an object",
     lambda g: ("GET", "/queue", {"params": {"cursor": cursor_of({"a": 1, "b": 2})},
                                  "headers": g.staff("handler")}), 422, ["query", "cursor"]),
    ("a cursor that is not base64",
     lambda g: ("GET", "/queue", {"params": {"cursor": "!!!~~~"}, "headers": g.staff("dispatcher")}), 422,
     ["query", "cursor"]),
    ("an extension id past 32 bits",
     lambda g: ("POST", f"/staff/appeals/{g.accepted}/decide_extension",
                {"json": {"version": g.accepted_version, "extension_id": 2**31, "approve": True},
                 "headers": g.staff("supervisor")}), 422, ["body", "extension_id"]),
    ("a version past 32 bits",
     lambda g: ("POST", f"/staff/appeals/{g.code}/accept", {"json": {"version": 2**63},
                                                            "headers": g.staff("handler")}), 422, ["body", "version"]),
    ("an extension of 99999999 days",
     lambda g: ("POST", f"/staff/appeals/{g.accepted}/request_extension",
                {"json": {"version": g.accepted_version, "extra": "99999999d", "reason": "需要时间"},
                 "headers": g.staff("handler")}), 422, ["body", "extra"]),
    ("an extension of more than a year",
     lambda g: ("POST", f"/staff/appeals/{g.accepted}/request_extension",
                {"json": {"version": g.accepted_version, "extra": "367d", "reason": "需要时间"},
                 "headers": g.staff("handler")}), 422, ["body", "extra"]),
    ("a lone surrogate in the title",
     lambda g: ("POST", "/appeals", raw_json(json.dumps({**GOOD, "title": "X"}).replace('"X"', '"\\ud800"'))),
     422, ["body", "title"]),
    ("a lone surrogate as an unknown field's name",
     lambda g: ("POST", "/appeals", raw_json(json.dumps({**GOOD, "X": 1}).replace('"X"', '"\\udfff"'))),
     422, ["body", "?"]),  # named, with what cannot be encoded replaced
    ("a lone surrogate in a note",
     lambda g: ("POST", f"/staff/appeals/{g.code}/note",
                raw_json(f'{{"version": {g.version}, "text": "\\udc80"}}', g.staff("handler"))),
     422, ["body", "text"]),
    ("an unknown district",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "location": {"district": "atlantis"}}}), 422,
     ["body", "location", "district"]),
    ("an unknown street",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "location": {"district": "shinan", "street": "taidong"}}}),
     422, ["body", "location", "street"]),
    ("a street without its district",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "location": {"street": "badaguan"}}}), 422,
     ["body", "location", "district"]),
    ("an unknown category",
     lambda g: ("POST", "/appeals", {"json": {**GOOD, "category": "no_such_category"}}), 422, ["body", "category"]),
    ("a declared body past 64 KiB",
     lambda g: ("POST", "/appeals", {"content": b"{" + b" " * 70_000 + b"}",
                                     "headers": {"content-type": "application/json"}}), 413, None),
]


@pytest.fixture
def given(staff_api) -> Given:
    code, version = appeal_in("dispatched")
    waiting, waiting_version = appeal_in("waiting_requester")
    accepted, accepted_version = appeal_in("accepted")
    return Given(staff_api, code, version, access_token(get_settings().signing_key(), code), waiting,
                 waiting_version, accepted, accepted_version)


def test_every_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(given):
    before = stored()
    wrong = []
    for name, build, status, loc in CASES:
        method, path, kwargs = build(given)
        response = given.api.request(method, path, **kwargs)
        detail = response.json().get("detail") if response.headers.get("content-type", "").startswith(
            "application/json") else None
        locs = [error.get("loc") for error in detail] if isinstance(detail, list) else []
        echoed = isinstance(detail, list) and any("input" in error for error in detail)
        if response.status_code != status or (loc is not None and loc not in locs) or echoed:
            wrong.append((name, response.status_code, response.text[:200]))
    assert not wrong, "\n".join(map(str, wrong))
    assert stored() == before, "a refused request stored something"
    assert given.api.get("/queue", headers=given.staff("handler")).status_code == 200


@on_postgresql
def test_a_422_names_the_field_without_echoing_the_input(staff_api):
    long_text = "长" * 6000
    response = staff_api.post("/appeals", json={**GOOD, "text": long_text})
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": ["body", "text"], "msg": "String should have at most 5000 characters",
                                          "type": "string_too_long"}]
    assert len(response.content) < 300 and "长长" not in response.text


@on_sqlite
def test_dates_are_the_citys_local_days(staff_api):
    response = staff_api.get("/supervision/rates", params={"start": "2026-11-01", "end": "2026-11-30"},
                             headers=staff_api.staff["supervisor"])
    assert response.status_code == 200, response.text
    # Asia/Shanghai is UTC+8: the local day 1 November starts at 16:00 UTC on 31 October, and the
    # end date is included whole.
    assert response.json()["start"].startswith("2026-10-31T16:00:00")
    assert response.json()["end"].startswith("2026-11-30T16:00:00")
    local_time = staff_api.get("/supervision/rates", params={"start": "2026-11-01T08:00:00"},
                               headers=staff_api.staff["supervisor"])
    assert local_time.status_code == 200 and local_time.json()["start"].startswith("2026-11-01T00:00:00")


@on_postgresql
def test_the_valid_places_and_categories_are_published(staff_api):
    districts = {d["code"]: d for d in staff_api.get("/reference/districts").json()}
    assert districts["shinan"]["name_zh"] == "市南区" and districts["shinan"]["name_en"] == "Shinan District"
    streets = {s["code"]: s for s in districts["shinan"]["streets"]}
    assert "badaguan" in streets and streets["badaguan"]["name_zh"].endswith("街道")
    assert "taidong" not in streets and "taidong" in {s["code"] for s in districts["shibei"]["streets"]}
    categories = {c["code"]: c for c in staff_api.get("/reference/categories").json()}
    assert categories["urban_management"]["name_zh"] and categories["urban_management"]["name_en"]
    assert all(c["parent"] is None or c["parent"] in categories for c in categories.values())
    # Every published value is accepted.
    place = {"district": "shibei", "street": "taidong"}
    assert staff_api.post("/appeals", json={**GOOD, "location": place, "category": "urban_management"}
                          ).status_code == 201


def _together(calls: list) -> list:
    """Run the calls in threads released at one moment; their responses."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@on_both
def test_one_department_added_twice_at_once_is_one_assist_and_a_409(staff_api):
    for _ in range(3):  # a race may fall either way; neither answer is ever a 500
        code, version = appeal_in("accepted")
        body = {"version": version, "department": ELSEWHERE}
        responses = _together([partial(staff_api.post, f"/staff/appeals/{code}/add_assist", json=body,
                                       headers=staff_api.staff[role]) for role in ("handler", "department_head")])
        # The loser either finds the appeal changed (409) or, reading the assists a moment after the
        # winner committed, the department already there (422); never a second assist.
        statuses = sorted(r.status_code for r in responses)
        assert statuses[0] == 200 and statuses[1] in (409, 422), [r.text for r in responses]
        detail = staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["handler"]).json()
        assert detail["assisting"] == [ELSEWHERE]


@on_both
def test_two_hand_dispatches_with_an_assisting_department_at_once(staff_api):
    for _ in range(3):
        code, version = appeal_in("triage")
        body = {"version": version, "department": HOME, "assisting": [ELSEWHERE]}
        # Supervisors both times: they see every appeal, so both requests get past the lookup and race
        # on the write (a dispatcher second would find the appeal gone from its view: 404).
        responses = _together([partial(staff_api.post, f"/staff/appeals/{code}/dispatch", json=body,
                                       headers=staff_api.staff[role]) for role in ("supervisor", "supervisor")])
        assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
        detail = staff_api.get(f"/staff/appeals/{code}", headers=staff_api.staff["handler"]).json()
        assert detail["assisting"] == [ELSEWHERE] and detail["department"] == HOME
        assert [e["kind"] for e in detail["history"]].count("dispatch") == 1


@on_sqlite
def test_a_chunked_body_past_the_limit_is_refused_without_reading_it(staff_api):
    """20 MB offered in chunks, no Content-Length: the answer is 413 after about 64 KiB, and the
    server stops reading; the client sees the answer while it is still sending."""
    url = urlsplit(str(staff_api.base_url))
    before = stored()
    chunk = b"x" * 16384
    sent = 0
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(b"POST /appeals HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        conn.setblocking(False)
        answer = b""
        while sent < 20_000_000 and time.monotonic() - started < 30:
            try:
                answer += conn.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            if b"\r\n\r\n" in answer:
                break
            try:
                sent += conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except BlockingIOError:
                time.sleep(0.01)
            except ConnectionError:
                break
        conn.setblocking(True)
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                more = conn.recv(65536)
            except ConnectionError:
                break
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 5_000_000, f"the client could send {sent} bytes before the answer"
    assert stored() == before


def _wait_closed(conn: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Read until the server closes the connection (true) or `seconds` pass; what it said."""
    conn.settimeout(0.2)
    said = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            more = conn.recv(4096)
        except TimeoutError:
            continue
        except ConnectionError:
            return True, said
        if not more:
            return True, said
        said += more
    return False, said


@on_sqlite
def test_slow_clients_are_cut_off(stack, monkeypatch):
    """A client that connects and says nothing, one that sends its headers a byte at a time, and one
    whose body never finishes: each is cut off after the deadline, and the API serves others meanwhile."""
    monkeypatch.setitem(stack.env, "APPEALFLOW_REQUEST_HEADER_TIMEOUT_SECONDS", "1")
    monkeypatch.setitem(stack.env, "APPEALFLOW_REQUEST_BODY_TIMEOUT_SECONDS", "1")
    url = urlsplit(stack.start_api())
    address = (url.hostname, url.port)
    with socket.create_connection(address) as silent, socket.create_connection(address) as dripping, \
            socket.create_connection(address) as unfinished:
        started = time.monotonic()
        unfinished.sendall(b"POST /appeals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n{\"type\":")
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\n":  # never the blank line that ends headers
            try:
                dripping.send(bytes([byte]))
            except ConnectionError:
                break
            time.sleep(0.1)
            if time.monotonic() - started > 4:
                break
        with socket.create_connection(address, timeout=5) as other:  # still served meanwhile
            other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _wait_closed(other, 5)[1].startswith(b"HTTP/1.1 200")
        closed, _ = _wait_closed(silent, 5)
        assert closed, "a connection that sent nothing was kept open"
        closed, _ = _wait_closed(dripping, 5)
        assert closed, "a connection sending its headers a byte at a time was kept open"
        closed, said = _wait_closed(unfinished, 5)
        assert said.startswith(b"HTTP/1.1 408"), said[:100]
        assert time.monotonic() - started < 10
