"""A department's work queue with 200,000 appeals in PostgreSQL: p50/p95/p99 of GET /queue over
HTTP, with the migrations' indexes, next to the same requests with the queue indexes dropped.

    python bench/work_queue.py [--appeals 200000] [--requests 300]

PostgreSQL is DATABASE_URL when it names a server (a fresh database is made on it), else an
embedded server. The appeals spread over every department and status as a city's would; the
requests are a handler's: first pages, later pages by cursor, and status / overdue / text filters.
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appealflow.models.appeals.appeal import Appeal, AppealAssist  # noqa: E402
from appealflow.models.appeals.enums import Role  # noqa: E402
from appealflow.models.city.department import Department  # noqa: E402
from appealflow.models.city.people import add_user  # noqa: E402
from appealflow.models.city.reference import load_reference_files  # noqa: E402
from appealflow.models.storage.columns import utcnow  # noqa: E402
from appealflow.models.storage.db import engine_for, session_scope  # noqa: E402
from appealflow.models.storage.schema import migrate  # noqa: E402
from appealflow.runtime.services import free_port, spawn, start_redis, stop, wait_until  # noqa: E402
from appealflow.settings import get_settings  # noqa: E402
from tests.postgres import new_database, postgres_server  # noqa: E402

STATUS_MIX = [("closed", 55), ("replied", 10), ("dispatched", 8), ("accepted", 8), ("in_progress", 12),
              ("waiting_requester", 2), ("triage", 3), ("returned", 2)]
QUEUE_INDEXES = {
    "ix_appeal_queue": "CREATE INDEX ix_appeal_queue ON appeal (department_code, resolve_due_at, id) "
                       "WHERE status IN ('dispatched', 'accepted', 'in_progress', 'waiting_requester')",
    "ix_appeal_department_status": "CREATE INDEX ix_appeal_department_status ON appeal (department_code, status)",
}
HANDLER = "bench.handler"
PASSWORD = "bench-password-1"


def fill(url: str, count: int, rng: random.Random) -> str:
    """`count` appeals over all departments; returns the busiest department, the handler's."""
    with session_scope(url) as session:
        departments = [d.code for d in session.query(Department).all()]
    weights = [rng.paretovariate(1.2) for _ in departments]
    statuses = [s for s, _ in STATUS_MIX]
    status_weights = [w for _, w in STATUS_MIX]
    now = utcnow()
    engine = engine_for(url)
    started = time.monotonic()
    with engine.begin() as connection:
        for chunk in range(0, count, 10_000):
            rows = []
            for n in range(chunk, min(chunk + 10_000, count)):
                status = rng.choices(statuses, status_weights)[0]
                received = now - timedelta(minutes=rng.randint(0, 60 * 24 * 90))
                dispatched = status not in ("triage", "returned")
                rows.append(dict(
                    code=f"B{n:09d}", channel="web", appeal_type="complaint", priority="normal",
                    title=f"诉求 {n} 路灯 噪音 停水"[: 20 + n % 5], text="具体情况如下。" * 5,
                    status=status, department_code=rng.choices(departments, weights)[0] if dispatched else None,
                    received_at=received, updated_at=received, version=2,
                    resolve_due_at=received + timedelta(days=5) if dispatched else None,
                    accept_due_at=received + timedelta(hours=2) if dispatched else None,
                    requester_phone="13900000000"))
            connection.execute(insert(Appeal), rows)
            print(f"  inserted {min(chunk + 10_000, count)}/{count} appeals "
                  f"({time.monotonic() - started:.0f}s)", flush=True)
        busiest = connection.execute(text(
            "SELECT department_code FROM appeal WHERE department_code IS NOT NULL GROUP BY 1 "
            "ORDER BY count(*) DESC LIMIT 1")).scalar_one()
        some = connection.execute(text("SELECT id FROM appeal WHERE department_code <> :d ORDER BY id LIMIT 2000"),
                                  {"d": busiest}).scalars().all()
        connection.execute(insert(AppealAssist), [dict(appeal_id=i, department_code=busiest) for i in some[::4]])
        connection.execute(text("ANALYZE"))
    return busiest


def measure(api: str, token: str, requests: int, rng: random.Random) -> list[float]:
    headers = {"Authorization": f"Bearer {token}"}
    timings = []
    with httpx.Client(base_url=api, headers=headers, timeout=30) as client:
        cursor = None
        for n in range(requests):
            params: dict = {"limit": 50}
            kind = n % 5
            if kind == 1 and cursor:
                params["cursor"] = cursor
            elif kind == 2:
                params["status"] = rng.choice(["accepted", "in_progress", "dispatched"])
            elif kind == 3:
                params["overdue"] = "true"
            elif kind == 4:
                params["q"] = "停水"
            started = time.perf_counter()
            response = client.get("/queue", params=params)
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            cursor = response.json()["next_cursor"] if kind in (0, 1) else cursor
    return timings


def percentiles(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(pick(0.95), 2),
            "p99_ms": round(pick(0.99), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appeals", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    work = Path(tempfile.mkdtemp(prefix="appealflow-queue-"))
    processes, exits = [], ExitStack()
    try:
        database_url = new_database(exits.enter_context(postgres_server(work / "pgdata")))
        redis_process, redis_url = start_redis(work / "redis")
        processes.append(redis_process)
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, APPEALFLOW_DATA_DIR=str(work / "var"))
        os.environ.update(env)
        get_settings.cache_clear()
        url = get_settings().sqlalchemy_url
        migrate(url)
        with session_scope(url) as session:
            load_reference_files(session)
        department = fill(url, args.appeals, rng)
        with session_scope(url) as session:
            add_user(session, username=HANDLER, password=PASSWORD, role=Role.handler, department_code=department)
            open_count = session.execute(text(
                "SELECT count(*) FROM appeal WHERE (department_code = :d OR id IN (SELECT appeal_id FROM appeal_assist "
                "WHERE department_code = :d)) AND status IN ('dispatched','accepted','in_progress',"
                "'waiting_requester')"), {"d": department}).scalar_one()
        port = free_port()
        exe = str(Path(sys.executable).with_name("appealflow"))
        api_process = spawn([exe, "api", "--port", str(port)], env=env, log_file=work / "api.log")
        processes.append(api_process)
        api = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, timeout=60, what="API",
                   process=api_process)
        token = httpx.post(f"{api}/auth/token", data={"username": HANDLER, "password": PASSWORD}).json()["access_token"]

        measure(api, token, 30, rng)  # warm the pool and the caches
        indexed = percentiles(measure(api, token, args.requests, rng))
        print(f"with indexes:    {indexed}")
        with engine_for(url).begin() as connection:
            for name in QUEUE_INDEXES:
                connection.execute(text(f"DROP INDEX {name}"))
            connection.execute(text("ANALYZE appeal"))
        measure(api, token, 30, rng)
        unindexed = percentiles(measure(api, token, args.requests, rng))
        print(f"without indexes: {unindexed}")
        with engine_for(url).begin() as connection:
            for statement in QUEUE_INDEXES.values():
                connection.execute(text(statement))
    finally:
        for process in reversed(processes):
            stop(process)
        exits.close()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.appeals} appeals in PostgreSQL; department {department} has {open_count} open appeals; "
          f"{args.requests} GET /queue requests over HTTP per run (pages of 50, cursors, filters)")
    print(f"  p99 {indexed['p99_ms']:.1f} ms with the queue indexes (target: under 50 ms), "
          f"{unindexed['p99_ms']:.1f} ms without: {unindexed['p99_ms'] / indexed['p99_ms']:.1f}x")
    print(json.dumps({"bench": "queue", "appeals": args.appeals, "open_in_department": open_count,
                      "requests": args.requests, **indexed,
                      **{f"unindexed_{k}": v for k, v in unindexed.items()},
                      "ratio_p99_unindexed_to_indexed": round(unindexed["p99_ms"] / indexed["p99_ms"], 2),
                      "target_p99_ms": 50, "met": indexed["p99_ms"] < 50}))


if __name__ == "__main__":
    main()
