"""End to end through the whole system: a steady stream of appeals posted over HTTP, and the time
from each POST to its department's notice arriving at a local SMTP receiver.

    python bench/end_to_end.py [--rate 50] [--seconds 60] [--postgres]

The system runs as `appealflow up` runs it (bench/system.py): Redis, a Prefect server, one API
process, two dispatch workers, one delivery worker (`--dispatch-workers`, `--delivery-workers`), real
SMTP delivery to a receiver on 127.0.0.1. With `--postgres`, Prefect's own server keeps its database
on the same PostgreSQL server too, as a deployment on PostgreSQL would (`--prefect-sqlite`: its
default SQLite, which answers 503 while busy and so adds its clients' 2, 4, 8 s back-offs).
Requests go out on a fixed schedule (open loop, bench/loadgen.py); each latency runs from the
request's scheduled moment to the arrival of the first message to a department naming its code,
so a stall anywhere counts against every appeal it held up. Every appeal is one the catalogue
routes to a department; its requester is told too (received, dispatched), so delivery carries
three messages per appeal. The baseline, measured in the same run and printed beside it, is the
bare HTTP round trip of the same POSTs. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import open_loop, post_json  # noqa: E402
from bench.system import System, appeal_body  # noqa: E402


def pick(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stage_breakdown(url: str, posted: dict[str, float]) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Each appeal's way through the system from the times the database keeps: the POST (scheduled) to
    `received_at` (intake), to `dispatched_at` (the dispatch flow run recorded it), to its department
    notice's `sent_at` (delivery marked it sent); and the messages per appeal by event and audience."""
    from sqlalchemy import func, select

    from appealflow.models.appeals.appeal import Appeal
    from appealflow.models.storage.db import session_scope
    from appealflow.models.telling.outbox import Notification

    with session_scope(url) as session:
        rows = session.execute(
            select(Appeal.code, Appeal.received_at, Appeal.dispatched_at, func.min(Notification.sent_at))
            .join(Notification, Notification.appeal_id == Appeal.id)
            .where(Appeal.code.in_(list(posted)), Notification.audience == "department",
                   Notification.event == "dispatched")
            .group_by(Appeal.code, Appeal.received_at, Appeal.dispatched_at)).all()
        kinds = session.execute(select(Notification.event, Notification.audience, func.count())
                                .join(Appeal, Notification.appeal_id == Appeal.id)
                                .where(Appeal.code.in_(list(posted)))
                                .group_by(Notification.event, Notification.audience)).all()
    spans: dict[str, list[float]] = {"POST -> received (intake)": [], "received -> dispatched (dispatch)": [],
                                     "dispatched -> notice sent (delivery)": []}
    for code, received_at, dispatched_at, sent_at in rows:
        if None in (received_at, dispatched_at, sent_at):
            continue
        spans["POST -> received (intake)"].append((received_at.timestamp() - posted[code]) * 1000)
        spans["received -> dispatched (dispatch)"].append((dispatched_at - received_at).total_seconds() * 1000)
        spans["dispatched -> notice sent (delivery)"].append((sent_at - dispatched_at).total_seconds() * 1000)
    stages = {name: (round(statistics.median(v), 1), round(pick(sorted(v), 0.99), 1)) for name, v in spans.items() if v}
    per_appeal = {f"{event}/{audience}": round(n / len(posted), 2) for event, audience, n in sorted(kinds)}
    return stages, per_appeal


def dispatch_batches(api: str) -> dict:
    """How many dispatch batches ran (warm-up included) and how long they took, from the
    `appealflow_dispatch_batch_seconds` histogram on /metrics: the mean, and the bucket bound under
    which half and 99% of them finished."""
    import httpx

    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in httpx.get(f"{api}/metrics", timeout=30).text.splitlines():
        if line.startswith("appealflow_dispatch_batch_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("appealflow_dispatch_batch_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("appealflow_dispatch_batch_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    buckets.sort()

    def under(q: float) -> float:
        return next((bound for bound, n in buckets if n >= q * count), float("inf"))

    return {"batches": int(count), "mean_s": round(total / count, 3) if count else None,
            "p50_under_s": under(0.5), "p99_under_s": under(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="appeals per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL: DATABASE_URL if it names one, else an embedded server")
    parser.add_argument("--dispatch-workers", type=int, default=2)
    parser.add_argument("--delivery-workers", type=int, default=1, help="as `appealflow up` starts")
    parser.add_argument("--prefect-sqlite", action="store_true",
                        help="with --postgres, keep Prefect's own server on SQLite (its default)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="how long to wait for the last notices")
    args = parser.parse_args()

    posted: dict[str, float] = {}  # code -> scheduled send time (wall clock)

    def answered(_n: int, body: bytes, sent_at: float) -> None:
        posted[json.loads(body)["code"]] = sent_at

    with System(postgres=args.postgres, dispatch_workers=args.dispatch_workers,
                delivery_workers=args.delivery_workers, prefect_on_postgres=not args.prefect_sqlite) as system:
        port = system.api_port
        # Warm-up: the first appeals pay for imports, pools and the first flow runs.
        asyncio.run(open_loop(port, lambda n: post_json("/appeals", appeal_body(10**6 + n)), rate=10, seconds=3,
                              on_answer=answered))
        deadline = time.monotonic() + 120
        while len(system.receiver.department_notices().keys() & posted.keys()) < len(posted):
            if time.monotonic() > deadline:
                raise TimeoutError("warm-up appeals were not all notified within 120 s")
            time.sleep(0.2)
        posted.clear()
        rss_before = system.rss_mb()

        print(f"posting {args.rate:.0f} appeals/s for {args.seconds:.0f} s ...", flush=True)
        started = time.time()
        result = asyncio.run(open_loop(port, lambda n: post_json("/appeals", appeal_body(n)), rate=args.rate,
                                       seconds=args.seconds, on_answer=answered))
        posting_done = time.time()
        deadline = time.monotonic() + args.drain_timeout
        while True:
            notices = system.receiver.department_notices()
            if len(notices.keys() & posted.keys()) >= len(posted) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        drained = time.time()
        messages = len(system.receiver)
        stages, per_appeal = stage_breakdown(system.url, posted)
        batches = dispatch_batches(system.api)
        rss_after = system.rss_mb()
        errors_in_logs = system.log_errors()
        backend = "postgresql" if args.postgres else "sqlite"

    latencies = sorted((notices[code] - sent) * 1000 for code, sent in posted.items() if code in notices)
    missing = len(posted) - len(latencies)
    http = sorted(result.latencies_ms)
    figures = {
        "p50_ms": round(statistics.median(latencies), 1), "p99_ms": round(pick(latencies, 0.99), 1),
        "max_ms": round(latencies[-1], 1), "http_p50_ms": round(statistics.median(http), 1),
        "http_p99_ms": round(pick(http, 0.99), 1),
    }
    print(f"\n{backend}: {len(posted)} appeals posted at {args.rate:.0f}/s over {posting_done - started:.1f} s "
          f"(HTTP errors {result.errors}); {len(latencies)} department notices, {missing} missing, "
          f"{messages} messages in all, last one {drained - posting_done:.1f} s after the last POST")
    print(f"  POST -> department notice at the SMTP receiver: p50 {figures['p50_ms']:.0f} ms, "
          f"p99 {figures['p99_ms']:.0f} ms, max {figures['max_ms']:.0f} ms (target p99 under 2,000 ms)")
    print(f"  baseline, the POST alone (same requests): p50 {figures['http_p50_ms']} ms, "
          f"p99 {figures['http_p99_ms']} ms")
    print("  where the time went (p50 / p99 ms, from the database's own times):")
    for stage, (p50, p99) in stages.items():
        print(f"    {stage:<34} {p50:8.0f} / {p99:8.0f}")
    print(f"  dispatch batches (claim to end of flow run, from /metrics): {batches}")
    print(f"  messages per appeal: {per_appeal}")
    print(f"  RSS MB before {rss_before}, after {rss_after}; tracebacks in logs: {errors_in_logs}")
    print(json.dumps({"bench": "end_to_end", "backend": backend, "rate_per_s": args.rate, "seconds": args.seconds,
                      "appeals": len(posted), "http_errors": result.errors, "notices": len(latencies),
                      "missing": missing, "messages": messages, **figures,
                      "ratio_p99_to_http_p99": round(figures["p99_ms"] / figures["http_p99_ms"], 1),
                      "target_p99_ms": 2000, "met": figures["p99_ms"] < 2000 and missing == 0,
                      "tracebacks_in_logs": errors_in_logs, "stages_p50_p99_ms": stages,
                      "messages_per_appeal": per_appeal, "dispatch_batches": batches,
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


if __name__ == "__main__":
    main()
