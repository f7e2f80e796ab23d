"""A soak: the whole system at a steady rate for ten minutes, for errors and memory growth.

    python bench/soak.py [--minutes 10] [--rate 20] [--postgres]

The system is bench/system.py's (`appealflow up` as it runs: Redis, a Prefect server, one API,
two dispatch workers, one delivery worker, a local SMTP receiver). Appeals go out on a fixed
schedule, one minute at a time (open loop, bench/loadgen.py), and after the last one the system is
given time to dispatch and deliver everything. Reported: appeals posted, dispatched and notified per
second; errors (HTTP answers other than 2xx, connections lost, appeals never dispatched, department
notices missing, tracebacks in the logs); the resident memory of the API and of each worker after
a warm-up minute and at the end (target: zero errors, growth under 10%). The baseline, measured in
the same run, is the first minute: throughput and memory are compared with it. The last line of
output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import open_loop, post_json  # noqa: E402
from bench.system import System, appeal_body  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="appeals per second")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL: DATABASE_URL if it names one, else an embedded server")
    args = parser.parse_args()

    from sqlalchemy import func, select

    posted: dict[str, float] = {}
    counter = iter(range(10**9))
    minutes = max(1, round(args.minutes))
    http_errors = 0
    per_minute: list[dict] = []

    def answered(_n: int, body: bytes, sent_at: float) -> None:
        posted[json.loads(body)["code"]] = sent_at

    def make(_n: int) -> bytes:
        return post_json("/appeals", appeal_body(next(counter)))

    with System(postgres=args.postgres) as system:
        from appealflow.models.appeals.appeal import Appeal
        from appealflow.models.appeals.enums import AppealStatus
        from appealflow.models.storage.db import session_scope

        def received() -> int:
            with session_scope(system.url) as session:
                return session.execute(select(func.count()).select_from(Appeal)
                                       .where(Appeal.status == AppealStatus.received)).scalar_one()

        started = time.time()
        rss_start = None
        for minute in range(minutes):
            seconds = min(60.0, args.minutes * 60 - minute * 60) if minute == minutes - 1 else 60.0
            result = asyncio.run(open_loop(system.api_port, make, rate=args.rate, seconds=max(seconds, 1.0),
                                           on_answer=answered))
            http_errors += result.errors
            rss = system.rss_mb()
            if rss_start is None:  # after the first minute: imports done, pools and caches filled
                rss_start = rss
            per_minute.append({"minute": minute + 1, "per_s": round(result.rate, 1), "errors": result.errors,
                               "p99_ms": round(result.percentile(0.99), 1), "rss_mb": rss})
            print(f"  minute {minute + 1}: {result.rate:5.1f} appeals/s, p99 {result.percentile(0.99):6.1f} ms, "
                  f"errors {result.errors}, waiting {received()}, notices {len(system.receiver)}, RSS MB {rss}",
                  flush=True)
        posting_done = time.time()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            notices = system.receiver.department_notices()
            if len(notices.keys() & posted.keys()) >= len(posted) and received() == 0:
                break
            time.sleep(0.5)
        settled = time.time()
        notices = system.receiver.department_notices()
        still_received = received()
        rss_end = system.rss_mb()
        alive = system.alive()
        tracebacks = system.log_errors()
        messages = len(system.receiver)
        backend = "postgresql" if args.postgres else "sqlite"

    missing = len(posted.keys() - notices.keys())
    growth = {name: round(100 * (rss_end[name] - rss_start[name]) / rss_start[name], 1) for name in rss_end}
    errors = http_errors + missing + still_received + tracebacks + sum(not up for up in alive.values())
    total_seconds = settled - started
    print(f"\n{backend}: {len(posted)} appeals at {args.rate:.0f}/s for {posting_done - started:.0f} s; everything "
          f"settled {settled - posting_done:.1f} s after the last POST")
    print(f"  throughput: {len(posted) / (posting_done - started):.1f} appeals/s posted, "
          f"{len(notices) / total_seconds:.1f} department notices/s, {messages} messages in all")
    print(f"  errors: {http_errors} HTTP, {missing} notices missing, {still_received} never dispatched, "
          f"{tracebacks} tracebacks in logs, processes alive {alive}")
    print(f"  RSS MB after minute 1 {rss_start}, at the end {rss_end}; growth % {growth} (target under 10%)")
    print(json.dumps({"bench": "soak", "backend": backend, "minutes": args.minutes, "rate_per_s": args.rate,
                      "appeals": len(posted), "posted_per_s": round(len(posted) / (posting_done - started), 1),
                      "notices": len(notices), "messages": messages, "errors": errors, "http_errors": http_errors,
                      "missing_notices": missing, "never_dispatched": still_received, "tracebacks_in_logs": tracebacks,
                      "rss_start_mb": rss_start, "rss_end_mb": rss_end, "rss_growth_pct": growth,
                      "max_rss_growth_pct": max(growth.values()), "per_minute": per_minute,
                      "met": errors == 0 and max(growth.values()) < 10,
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


if __name__ == "__main__":
    main()
