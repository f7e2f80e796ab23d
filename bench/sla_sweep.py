"""One escalation sweep with 1,000 clocks due among 1,000,000 open appeals in PostgreSQL, next to
the same sweep among 100,000: the sweep should cost what is due, not what exists.

    python bench/sla_sweep.py [--large 1000000] [--small 100000] [--due 1000] [--repeat 3]

PostgreSQL is DATABASE_URL when it names a server (a fresh database is made on it), else an
embedded server. Rows are generated inside PostgreSQL (generate_series). Each repetition makes a
fresh set of clocks due and times `sweep_deadlines.fn`, the body of the scheduled Prefect flow:
it fires the warning tier for each due clock with its event and outbox rows, committed in batches.
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appealflow.flows.escalation import sweep_deadlines  # noqa: E402
from appealflow.models.city.reference import load_reference_files  # noqa: E402
from appealflow.models.storage.columns import utcnow  # noqa: E402
from appealflow.models.storage.db import engine_for, session_scope  # noqa: E402
from appealflow.models.storage.schema import migrate  # noqa: E402
from appealflow.runtime.services import start_redis, stop  # noqa: E402
from appealflow.settings import get_settings  # noqa: E402
from tests.postgres import new_database, postgres_server  # noqa: E402

FILL = """
INSERT INTO appeal (code, channel, appeal_type, priority, title, text, status, department_code, received_at,
                    dispatched_at, updated_at, accept_due_at, resolve_due_at, version, return_count)
SELECT 'S' || lpad(n::text, 10, '0'), 'web', 'complaint', 'normal', '诉求 ' || n, '具体情况', 'accepted',
       (ARRAY(SELECT code FROM department ORDER BY code))[1 + n % 60], now() - interval '1 day',
       now() - interval '1 day', now(), now() + interval '1 hour', now() + interval '5 days', 2, 0
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS n;
INSERT INTO deadline_clock (appeal_id, clock, state, working, started_at, warn_at, due_at, severe_at,
                            next_tier, next_tier_at)
SELECT id, 'resolve', 'running', true, received_at, now() + interval '4 days', resolve_due_at,
       resolve_due_at + interval '2 days', 'warning', now() + interval '4 days'
FROM appeal WHERE code BETWEEN 'S' || lpad(CAST(:first AS text), 10, '0') AND 'S' || lpad(CAST(:last AS text), 10, '0');
"""
MAKE_DUE = """
UPDATE deadline_clock SET next_tier_at = now() - interval '1 minute', warn_at = now() - interval '1 minute'
WHERE id IN (SELECT id FROM deadline_clock WHERE next_tier = 'warning' AND next_tier_at > now()
             ORDER BY id DESC LIMIT :due)
"""


def fill(url: str, first: int, last: int) -> float:
    started = time.monotonic()
    with engine_for(url).begin() as connection:
        for statement in FILL.strip().split(";\n"):
            if statement.strip():
                connection.execute(text(statement), {"first": first, "last": last})
        connection.execute(text("ANALYZE"))
    return time.monotonic() - started


def sweeps(url: str, due: int, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        with engine_for(url).begin() as connection:
            connection.execute(text(MAKE_DUE), {"due": due})
        started = time.perf_counter()
        result = sweep_deadlines.fn(utcnow())
        timings.append(time.perf_counter() - started)
        assert result["warning"] == due, result  # it did the work it was timed for
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="appealflow-sweep-"))
    exits, redis_process = ExitStack(), None
    try:
        database_url = new_database(exits.enter_context(postgres_server(work / "pgdata")))
        redis_process, redis_url = start_redis(work / "redis")  # the sweep wakes delivery when it fires
        os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis_url, APPEALFLOW_DATA_DIR=str(work / "var"))
        get_settings.cache_clear()
        url = get_settings().sqlalchemy_url
        migrate(url)
        with session_scope(url) as session:
            load_reference_files(session)

        print(f"generating {args.small:,} open appeals with running clocks...", flush=True)
        print(f"  {fill(url, 1, args.small):.1f}s")
        small = sweeps(url, args.due, args.repeat)
        print(f"sweep of {args.due} due among {args.small:,}: " + ", ".join(f"{t * 1000:.0f} ms" for t in small))
        print(f"growing to {args.large:,}...", flush=True)
        print(f"  {fill(url, args.small + 1, args.large):.1f}s")
        large = sweeps(url, args.due, args.repeat)
        print(f"sweep of {args.due} due among {args.large:,}: " + ", ".join(f"{t * 1000:.0f} ms" for t in large))
    finally:
        if redis_process is not None:
            stop(redis_process)
        exits.close()
        shutil.rmtree(work, ignore_errors=True)

    small_s, large_s = statistics.median(small), statistics.median(large)
    print(f"\nmedian sweep: {large_s * 1000:.0f} ms among {args.large:,} (target: under 1 s), "
          f"{small_s * 1000:.0f} ms among {args.small:,}: the smaller table is {large_s / small_s:.2f}x faster "
          f"(target: at most 1.5x)")
    print(json.dumps({"bench": "sla_sweep", "due": args.due, "large_appeals": args.large, "small_appeals": args.small,
                      "sweep_large_ms": round(large_s * 1000, 1), "sweep_small_ms": round(small_s * 1000, 1),
                      "ratio_large_to_small": round(large_s / small_s, 3),
                      "met": large_s < 1 and large_s / small_s <= 1.5}))


if __name__ == "__main__":
    main()
