"""Drain a backlog of received appeals with two workers, next to the raw RQ no-op job rate of the
same workers measured in the same run.

    python bench/dispatch.py [--appeals 10000] [--workers 2] [--postgres] [--delivery-workers 2]
                             [--reference REVISION ...] [--routing-model off|e5|chargram]

Both phases use the same worker processes (`appealflow worker`, an RQ SimpleWorker), started and
idle before timing begins:
  1. no-op: 10,000 jobs of `os.getpid` enqueued on the dispatch queue; rate = jobs / (last job's
     end - first job's start), from RQ's own job timestamps.
  0. bare SQL: the same number of received appeals routed by dispatch's writes alone
     (bench/bare_dispatch.py), before any worker runs; the ratio to it is reported.
  2. dispatch: 10,000 received appeals committed to the database in one transaction, then one
     wake-up; rate = appeals / (time the last appeal changed status - time of the wake-up).
  4. start-up (run first, while no other worker runs): 50 received appeals, then a new worker started;
     the time from its spawn to the first of them routed, and to its RQ loop being registered (when
     it could take a job), three times; the median and the slowest are reported.
  3. delivery: the messages dispatch wrote to the outbox (held back until now: the workers above
     serve only the dispatch queue), sent to a local SMTP receiver by `--delivery-workers` delivery
     workers (`appealflow worker --queues delivery`, as `appealflow up` runs them), once by each
     `--reference` revision's code and once by this checkout's, in that order, in the same run, on
     the same rows (put back to pending between rounds); rate = messages / (time the last one was
     marked sent - time they were released). The e-mail rate limit is set to `--email-limit` for
     every round: the local receiver has no quota, and the limit is still counted for each message.
With `--routing-model` other than off, phase 2's appeals are the labelled evaluation appeals
(tests/eval/appeals.jsonl, about 60 characters each) and the routing model is built before the
workers start. The last line of output is one JSON object with every figure.
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

import redis
from rq import Queue
from rq.job import Job
from sqlalchemy import delete, func, insert, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appealflow.models.appeals.appeal import Appeal, AppealEvent  # noqa: E402
from appealflow.models.appeals.enums import AppealStatus, NotificationStatus  # noqa: E402
from appealflow.models.appeals.tracking import new_tracking_code  # noqa: E402
from appealflow.models.city.reference import load_reference_files  # noqa: E402
from appealflow.models.routing.classifier_store import ensure_active  # noqa: E402
from appealflow.models.routing.evaluation import read_labelled  # noqa: E402
from appealflow.models.storage.columns import utcnow  # noqa: E402
from appealflow.models.storage.db import session_scope  # noqa: E402
from appealflow.models.storage.schema import migrate  # noqa: E402
from appealflow.models.telling.outbox import DeliveryAttempt, Notification  # noqa: E402
from appealflow.runtime.services import (  # noqa: E402
    spawn,
    start_prefect_server,
    start_redis,
    stop,
    wait_until,
)
from appealflow.settings import get_settings  # noqa: E402
from appealflow.workers.queues import DELIVERY, DISPATCH, QUEUES, wake  # noqa: E402
from bench import bare_dispatch  # noqa: E402
from bench.mailsink import MailSink  # noqa: E402
from bench.system import appealflow_command, reference_tree, revision_name  # noqa: E402
from tests.postgres import new_database, postgres_server  # noqa: E402

TEXTS = [
    ("工地夜间施工噪音", "每天晚上施工噪音很大，影响休息", "shinan", "badaguan"),
    ("停水两天无人处理", "小区停水两天没有任何通知", "shibei", "taidong"),
    ("路边流动摊贩占道经营", "流动摊贩占道，影响通行", "licang", "licun"),
    ("灵活就业社保缴纳咨询", "想咨询灵活就业人员养老保险怎么缴纳", None, None),
    ("一个问题", "请问这件事应该找谁", None, None),
]


def evaluation_texts() -> list[tuple[str, str, str | None, str | None]]:
    """The labelled evaluation appeals (tests/eval/appeals.jsonl): with a model on, an embedding's cost
    grows with the text, and these are as long as real appeals (about 60 characters, TEXTS' are 15)."""
    rows = read_labelled(ROOT / "tests" / "eval" / "appeals.jsonl")
    return [(r["title"], r["text"], r.get("district"), r.get("street")) for r in rows]


def progress(label: str, done: int, total: int, started: float) -> None:
    """A bar redrawn in place on a terminal; a line every few seconds in a log."""
    elapsed = time.monotonic() - started
    if sys.stdout.isatty():
        filled = int(30 * done / max(total, 1))
        print(f"\r  {label:<9} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {elapsed:5.1f}s",
              end="", flush=True)
    elif done >= total or int(elapsed * 10) % 50 == 0:
        print(f"  {label:<9} {done}/{total} after {elapsed:5.1f}s", flush=True)


def wait_with_progress(label: str, count_done, total: int, timeout: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        done = count_done()
        progress(label, done, total, started)
        if done >= total:
            if sys.stdout.isatty():
                print()
            return
        time.sleep(0.1)
    print()
    raise TimeoutError(f"{label}: not done within {timeout}s")


def bulk_received(url: str, count: int, rng: random.Random, texts=TEXTS) -> None:
    now = utcnow()
    rows = []
    for n in range(count):
        title, text, district, street = texts[n % len(texts)]
        rows.append(dict(code=new_tracking_code(now), channel="web", appeal_type=rng.choice(
            ["complaint", "help_request", "consultation"]), priority="normal", title=title, text=text,
            district=district, street=street, requester_phone=f"139{n:08d}",
            requester_email=f"r{n}@bench.test", status=AppealStatus.received, received_at=now,
            updated_at=now, version=1))
    with session_scope(url) as session:
        ids = session.execute(insert(Appeal).returning(Appeal.id), rows).scalars().all()
        session.execute(insert(AppealEvent), [dict(appeal_id=i, kind="received", actor="requester", at=now,
                                                  to_status=AppealStatus.received, detail={}) for i in ids])


def count(url: str, statement) -> int:
    with session_scope(url) as session:
        return session.execute(statement).scalar_one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appeals", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL: DATABASE_URL if it names one, else an embedded server")
    parser.add_argument("--delivery-workers", type=int, default=2, help="as `appealflow up` starts")
    parser.add_argument("--reference", action="append", metavar="REVISION",
                        help=f"a commit whose delivery code is measured first, in the same run (default "
                             f"{ISSUE_BASELINE}, delivery as issue 17 measured it); `--reference none` for none")
    parser.add_argument("--rounds", type=int, default=1, help="delivery turns per code path, interleaved")
    parser.add_argument("--email-limit", default="10000/second", help="APPEALFLOW_DELIVERY_RATE_LIMIT_EMAIL")
    parser.add_argument("--routing-model", choices=["off", "e5", "chargram"], default="off",
                        help="APPEALFLOW_ROUTING_MODEL for the dispatch phase; the active model is built (or "
                             "read from the cache) before the workers start, so its training is not timed")
    args = parser.parse_args()
    references = [r for r in (args.reference or [ISSUE_BASELINE]) if r != "none"]

    work = Path(tempfile.mkdtemp(prefix="appealflow-bench-"))
    processes = []
    exits = ExitStack()
    try:
        redis_process, redis_url = start_redis(work / "redis")
        processes.append(redis_process)
        if args.postgres:
            database_url = new_database(exits.enter_context(postgres_server(work / "pgdata")))
        else:
            database_url = f"sqlite:///{work / 'appealflow.db'}"
        print("starting a Prefect server...", flush=True)
        prefect_process, prefect_api = start_prefect_server(work / "prefect", ui=False)
        processes.append(prefect_process)
        with MailSink(work / "mail") as smtp:
            env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, PREFECT_API_URL=prefect_api,
                       APPEALFLOW_DATA_DIR=str(work / "var"), APPEALFLOW_SMTP_URL=smtp.apprise_url,
                       PREFECT_LOGGING_LEVEL="WARNING", APPEALFLOW_DELIVERY_RATE_LIMIT_EMAIL=args.email_limit,
                       APPEALFLOW_ROUTING_MODEL=args.routing_model)
            os.environ.update(env)
            get_settings.cache_clear()
            settings = get_settings()
            url = settings.sqlalchemy_url
            migrate(url)
            with session_scope(url) as session:
                load_reference_files(session)
                if args.routing_model != "off":
                    print(f"building the {args.routing_model} routing model (cached after the first run)...",
                          flush=True)
                    ensure_active(session, args.routing_model, settings.model_cache_dir)
            # Phase 0, before any worker runs: the bare SQL of dispatch's writes for as many appeals.
            bulk_received(url, args.appeals, random.Random(1))
            bare_appeals, bare_seconds = bare_dispatch.run(url, postgres=args.postgres)
            bare_rate = bare_appeals / bare_seconds
            print(f"  bare SQL  {bare_appeals} appeals in {bare_seconds:.2f}s", flush=True)
            connection = redis.Redis.from_url(redis_url)
            exe = str(Path(sys.executable).with_name("appealflow"))
            starts = [first_routed_after_start(url, env, exe, work, connection, turn) for turn in range(3)]
            print("  start-up  first appeal routed " + ", ".join(f"{s['first_routed_s']:.2f}s" for s in starts)
                  + " after spawn; RQ loop ready " + ", ".join(f"{s['rq_ready_s']:.2f}s" for s in starts),
                  flush=True)
            workers = [spawn([exe, "worker", "--queues", "dispatch", "--name", f"bench-{i}"], env=env,
                             log_file=work / f"worker-{i}.log") for i in range(args.workers)]
            processes += workers
            from rq import Worker

            wait_until(lambda: len(Worker.all(connection=connection)) == args.workers, timeout=60,
                       what="workers")
            time.sleep(1)

            # Phase 1: the raw rate of these workers on no-op jobs.
            queue = Queue(QUEUES[DISPATCH], connection=connection)
            jobs = queue.enqueue_many([Queue.prepare_data("os.getpid", result_ttl=600)
                                       for _ in range(args.appeals)])
            ids = [job.id for job in jobs]
            wait_with_progress("no-op", lambda: queue.finished_job_registry.count, args.appeals, 300)
            fetched = [j for j in Job.fetch_many(ids, connection=connection) if j]
            noop_seconds = (max(j.ended_at for j in fetched) - min(j.started_at for j in fetched)).total_seconds()
            noop_rate = len(fetched) / noop_seconds

            # Phase 2: the same number of appeals, routed by the dispatch flow.
            bulk_received(url, args.appeals, random.Random(1),
                          TEXTS if args.routing_model == "off" else evaluation_texts())
            flow_runs_before = _flow_runs(prefect_api)
            woke_at = utcnow()
            wake(connection, DISPATCH)
            pending = select(func.count()).select_from(Appeal).where(Appeal.status == AppealStatus.received)
            wait_with_progress("dispatch", lambda: args.appeals - count(url, pending), args.appeals, 600)
            last = count(url, select(func.max(Appeal.updated_at)))
            dispatch_seconds = (last - woke_at).total_seconds()
            dispatch_rate = args.appeals / dispatch_seconds
            by_status = dict(session_rows(url, select(Appeal.status, func.count()).group_by(Appeal.status)))
            flow_runs = _flow_runs(prefect_api) - flow_runs_before

            # Phase 3: delivery of what dispatch wrote to the outbox, by each code path in turn.
            total_messages = count(url, select(func.count()).select_from(Notification).where(
                Notification.target.is_not(None)))
            paths = [(f"ref {r}", revision_name(r), reference_tree(r, work / f"reference-{n}"))
                     for n, r in enumerate(references)] + [("current", "this checkout", None)]
            measured: dict[str, list[dict]] = {}
            for turn in range(args.rounds):  # turns interleave the code paths, so load drifts hit each alike
                for label, name, tree in paths:
                    print(f"  delivery by {name} ({args.delivery_workers} delivery workers), turn {turn + 1}",
                          flush=True)
                    measured.setdefault(label, []).append(dict(deliver_round(
                        f"{label} {turn}", tree, url=url, env=env, connection=connection, smtp=smtp,
                        workers=args.delivery_workers, total=total_messages, work=work), code=name))
            # Each path's median rate over its turns (the rest from its last turn), and every turn.
            rounds = {}
            for label, turns in measured.items():
                rates = [t["messages_per_s"] for t in turns]
                rounds[label] = dict(turns[-1], messages_per_s=round(statistics.median(rates), 1), turns=rates,
                                     duplicates=sum(t["duplicates"] for t in turns),
                                     missing=sum(t["missing"] for t in turns))
    finally:
        for process in reversed(processes):
            stop(process)
        exits.close()
        shutil.rmtree(work, ignore_errors=True)

    backend = "postgresql" if args.postgres else "sqlite"
    print(f"\n{args.workers} workers, {backend}, batch size {settings.dispatch_batch_size}, "
          f"routing model {args.routing_model}")
    print(f"  no-op jobs   {noop_rate:8.0f} jobs/s     ({len(fetched)} jobs in {noop_seconds:.2f}s)")
    print(f"  dispatch     {dispatch_rate:8.0f} appeals/s  ({args.appeals} appeals in {dispatch_seconds:.2f}s, "
          f"{flow_runs} flow runs, {by_status})")
    print(f"  ratio        {dispatch_rate / noop_rate:8.2f}x  dispatched appeals per no-op job, same workers")
    print(f"  bare SQL     {bare_rate:8.0f} appeals/s  (dispatch's writes alone, batches of {bare_dispatch.BATCH}, "
          f"one process; dispatch is {dispatch_rate / bare_rate:.2f}x of it)")
    first = sorted(s["first_routed_s"] for s in starts)
    ready = sorted(s["rq_ready_s"] for s in starts)
    print(f"  start-up     {first[1]:8.2f}s        from a worker's spawn to its first routed appeal (median of 3, "
          f"slowest {first[-1]:.2f}s; its RQ loop was ready after {ready[1]:.2f}s)")
    current = rounds["current"]
    for figures in rounds.values():
        print(f"  delivery     {figures['messages_per_s']:8.0f} messages/s ({total_messages} SMTP messages in "
              f"{figures['seconds']:.1f}s, {figures['duplicates']} duplicates, {figures['missing']} not received; "
              f"{args.delivery_workers} delivery workers; turns {figures['turns']}; {figures['code']})")
    ratios = {label: round(current["messages_per_s"] / figures["messages_per_s"], 2)
              for label, figures in rounds.items() if label != "current"}
    for label, ratio in ratios.items():
        print(f"  delivery     {ratio:8.2f}x  this checkout against {label}, same rows, same run")
    print(json.dumps({
        "bench": "dispatch", "backend": backend, "workers": args.workers, "appeals": args.appeals,
        "batch_size": settings.dispatch_batch_size,
        "routing_model": args.routing_model, "noop_jobs_per_s": round(noop_rate, 1),
        "noop_seconds": round(noop_seconds, 3), "dispatch_appeals_per_s": round(dispatch_rate, 1),
        "dispatch_seconds": round(dispatch_seconds, 3), "ratio_dispatch_to_noop": round(dispatch_rate / noop_rate, 3),
        "bare_sql_appeals_per_s": round(bare_rate, 1),
        "ratio_dispatch_to_bare_sql": round(dispatch_rate / bare_rate, 3),
        "flow_runs": flow_runs, "messages": total_messages, "delivery_workers": args.delivery_workers,
        "email_rate_limit": args.email_limit, "delivery_messages_per_s": current["messages_per_s"],
        "duplicate_messages": current["duplicates"], "missing_messages": current["missing"],
        "delivery_rounds": rounds, "ratio_delivery_to_reference": ratios,
        "worker_start_to_first_routed_s": first[1], "worker_start_to_first_routed_slowest_s": first[-1],
        "worker_start_to_rq_ready_s": ready[1],
    }))


def first_routed_after_start(url: str, env: dict, exe: str, work: Path, connection, turn: int) -> dict:
    """50 received appeals, then one new dispatch worker: seconds from its spawn to the first of them
    routed, and to its RQ registration. The worker is stopped after."""
    from rq import Worker

    with session_scope(url) as session:
        before = session.execute(select(func.coalesce(func.max(Appeal.id), 0))).scalar_one()
    bulk_received(url, 50, random.Random(turn))
    routed = select(func.count()).select_from(Appeal).where(Appeal.id > before,
                                                            Appeal.status != AppealStatus.received)
    name = f"bench-start-{turn}"
    spawned = time.monotonic()
    process = spawn([exe, "worker", "--queues", "dispatch", "--name", name], env=env,
                    log_file=work / f"{name}.log")
    first = ready = None
    try:
        while time.monotonic() - spawned < 120 and (first is None or ready is None):
            if first is None and count(url, routed):
                first = time.monotonic() - spawned
            if ready is None and any(w.name == name for w in Worker.all(connection=connection)):
                ready = time.monotonic() - spawned
            time.sleep(0.01)
        if first is None or ready is None:
            raise TimeoutError(f"worker {name}: nothing routed or no RQ loop within 120 s")
        # All 50 routed before it stops, so the next phases start with nothing waiting.
        wait_until(lambda: count(url, routed) == 50, timeout=120, what=f"{name} routing its 50 appeals")
    finally:
        stop(process)
    return {"first_routed_s": round(first, 3), "rq_ready_s": round(ready, 3)}


# Delivery as issue 17 measured it (92 messages/s): before batches, kept connections and fixed QR masks.
ISSUE_BASELINE = "fbbc411"


def deliver_round(label: str, tree: Path | None, *, url: str, env: dict, connection, smtp, workers: int,
                  total: int, work: Path) -> dict:
    """Every outbox row back to pending but not yet due, delivery workers of one code path started and
    idle, then all rows released at once; how fast they were sent, and whether each arrived once."""
    park = dict(status=NotificationStatus.pending, attempts=0, sent_at=None, claimed_until=None, claimed_by=None,
                subject=None, body=None, last_error=None)
    with session_scope(url) as session:
        session.execute(delete(DeliveryAttempt))
        session.execute(update(Notification).where(Notification.target.is_not(None))
                        .values(**park, next_attempt_at=utcnow() + timedelta(days=1)))
    smtp.clear()
    command, extra = appealflow_command(tree)
    slug = label.replace(" ", "-")
    processes = [spawn([*command, "worker", "--queues", "delivery", "--name", f"bench-{slug}-{i}"],
                       env=dict(env, **extra), log_file=work / f"delivery-{slug}-{i}.log") for i in range(workers)]
    try:
        from rq import Worker

        wait_until(lambda: sum(w.name.startswith(f"bench-{slug}-") for w in Worker.all(connection=connection))
                   == workers, timeout=120, what=f"{label} delivery workers")
        time.sleep(1)
        with session_scope(url) as session:
            released_at = utcnow()
            session.execute(update(Notification).where(Notification.target.is_not(None))
                            .values(next_attempt_at=released_at))
        wake(connection, DELIVERY)
        sent = select(func.count()).select_from(Notification).where(Notification.status == NotificationStatus.sent)
        wait_with_progress("delivery", lambda: count(url, sent), total, 900)
        last_sent = count(url, select(func.max(Notification.sent_at)))
    finally:
        for process in processes:
            stop(process)
    seconds = (last_sent - released_at).total_seconds()
    received = smtp.counts()  # (recipient, subject): each message names its appeal
    duplicates = sum(n - 1 for n in received.values())
    return {"messages_per_s": round(total / seconds, 1), "seconds": round(seconds, 2), "duplicates": duplicates,
            "missing": total - (sum(received.values()) - duplicates)}


def session_rows(url: str, statement) -> list:
    with session_scope(url) as session:
        return session.execute(statement).all()


def _flow_runs(prefect_api: str) -> int:
    import httpx

    return httpx.post(f"{prefect_api}/flow_runs/count", json={
        "flows": {"name": {"any_": ["dispatch-appeals"]}}}).json()


if __name__ == "__main__":
    main()
