"""End to end through the whole system: a steady stream of appeals posted over HTTP, and the time
from each POST to its department's notice arriving at a local SMTP receiver.

    python bench/end_to_end.py [--rate 50] [--seconds 60] [--postgres]

The system runs as `appealflow up` runs it (bench/system.py): Redis, a Prefect server, one API
process, two dispatch workers, one delivery worker, real SMTP delivery to a receiver on 127.0.0.1.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="appeals per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL: DATABASE_URL if it names one, else an embedded server")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="how long to wait for the last notices")
    args = parser.parse_args()

    posted: dict[str, float] = {}  # code -> scheduled send time (wall clock)

    def answered(_n: int, body: bytes, sent_at: float) -> None:
        posted[json.loads(body)["code"]] = sent_at

    with System(postgres=args.postgres) as system:
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
    print(f"  RSS MB before {rss_before}, after {rss_after}; tracebacks in logs: {errors_in_logs}")
    print(json.dumps({"bench": "end_to_end", "backend": backend, "rate_per_s": args.rate, "seconds": args.seconds,
                      "appeals": len(posted), "http_errors": result.errors, "notices": len(latencies),
                      "missing": missing, "messages": messages, **figures,
                      "ratio_p99_to_http_p99": round(figures["p99_ms"] / figures["http_p99_ms"], 1),
                      "target_p99_ms": 2000, "met": figures["p99_ms"] < 2000 and missing == 0,
                      "tracebacks_in_logs": errors_in_logs,
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


if __name__ == "__main__":
    main()
