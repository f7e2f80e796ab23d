"""POST /appeals against a bare FastAPI + SQLModel endpoint that inserts the same appeal row, both
served the same way (uvicorn, one process, the settings of `appealflow api`), measured side by side.

    python bench/intake.py [--seconds 5] [--rounds 3] [--postgres]

One database and one Redis serve both servers. For each concurrency level (1 and 10 clients, closed
loop, keep-alive HTTP/1.1 from bench/loadgen.py) the two endpoints take turns, `--rounds` times each,
so a noisy neighbour hits both alike; a rate is requests answered 2xx / seconds over all its rounds.
The real endpoint runs as in production: every request carries a fresh Idempotency-Key and passes
the public rate limit (set high enough never to trip, so its Redis check is still paid), and wakes
the dispatch and delivery workers (none run here; the wake-ups coalesce). Then an open loop at half
the real endpoint's peak rate gives p50/p99 from each request's scheduled moment.
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import closed_loop, open_loop, post_json  # noqa: E402

BODIES = [
    {"type": "complaint", "title": "工地夜间施工噪音扰民", "text": "每天晚上十一点以后还在施工，影响休息",
     "location": {"district": "shinan", "street": "badaguan"},
     "requester": {"name": "王先生", "phone": "13800000001", "email": "wang@bench.test"}},
    {"type": "help_request", "title": "小区停水两天无人处理", "text": "小区停水两天没有任何通知",
     "location": {"district": "shibei"}, "requester": {"phone": "13800000002"}},
    {"type": "consultation", "title": "灵活就业社保缴纳咨询", "text": "想咨询灵活就业人员养老保险怎么缴纳",
     "requester": {"email": "li@bench.test"}},
]


class Place(BaseModel):
    district: str | None = None
    street: str | None = None


class Person(BaseModel):
    name: str | None = None
    phone: str | None = None
    email: str | None = None


class BareBody(BaseModel):
    type: str
    title: str
    text: str
    location: Place = Place()
    requester: Person


def serve_bare(port: int) -> None:
    """The baseline: parse a comparable body, insert one appeal row, commit, answer its code."""
    import uvicorn
    from fastapi import FastAPI
    from sqlmodel import Session

    from appealflow.models.appeals.appeal import Appeal
    from appealflow.models.appeals.tracking import new_tracking_code
    from appealflow.models.storage import tables  # noqa: F401 - every table known, so foreign keys resolve
    from appealflow.models.storage.columns import utcnow
    from appealflow.models.storage.db import engine_for
    from appealflow.settings import get_settings

    url = get_settings().sqlalchemy_url
    # The engine the real API gets (models/storage/db.py): the same pool, and on SQLite the same pragmas
    # (synchronous=NORMAL), write lock and checkpoints. With pysqlite's defaults instead, every
    # commit of the baseline was an fsync, which flattered the real endpoint at one client.
    engine = engine_for(url)
    app = FastAPI()

    @app.post("/appeals", status_code=201)
    def create(body: BareBody) -> dict:
        now = utcnow()
        appeal = Appeal(code=new_tracking_code(now), channel="web", appeal_type=body.type, priority="normal",
                        title=body.title, text=body.text, district=body.location.district,
                        street=body.location.street, requester_name=body.requester.name,
                        requester_phone=body.requester.phone, requester_email=body.requester.email,
                        status="received", received_at=now, updated_at=now)
        with Session(engine) as session:
            session.add(appeal)
            session.commit()
            return {"code": appeal.code, "status": appeal.status}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def request_maker(run: str):
    def make(n: int) -> bytes:
        return post_json("/appeals", BODIES[n % len(BODIES)], {"Idempotency-Key": f"{run}-{n}-{uuid.uuid4().hex}"})

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per endpoint and concurrency level")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL: DATABASE_URL if it names one, else an embedded server")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the real API process into FILE")
    args = parser.parse_args()
    if args.serve_bare:
        return serve_bare(args.serve_bare)

    from appealflow.models.city.reference import load_reference_files
    from appealflow.models.storage.db import session_scope
    from appealflow.models.storage.schema import migrate
    from appealflow.runtime.services import free_port, spawn, start_redis, stop, wait_until
    from appealflow.settings import get_settings
    from tests.postgres import new_database, postgres_server

    work = Path(tempfile.mkdtemp(prefix="appealflow-intake-"))
    processes, exits = [], ExitStack()
    figures: dict = {}
    try:
        redis_process, redis_url = start_redis(work / "redis")
        processes.append(redis_process)
        if args.postgres:
            database_url = new_database(exits.enter_context(postgres_server(work / "pgdata")))
        else:
            database_url = f"sqlite:///{work / 'appealflow.db'}"
        env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, APPEALFLOW_DATA_DIR=str(work / "var"),
                   APPEALFLOW_RATE_LIMIT_INTAKE="100000000/minute", APPEALFLOW_LOG_LEVEL="WARNING")
        os.environ.update(env)
        get_settings.cache_clear()
        url = get_settings().sqlalchemy_url
        migrate(url)
        with session_scope(url) as session:
            load_reference_files(session)

        exe = str(Path(sys.executable).with_name("appealflow"))
        real_port, bare_port = free_port(), free_port()
        real_cmd = [exe, "api", "--port", str(real_port)]
        if args.profile:
            real_cmd = [sys.executable, "-m", "cProfile", "-o", args.profile, exe, "api", "--port", str(real_port)]
        real = spawn(real_cmd, env=env, log_file=work / "api.log")
        bare = spawn([sys.executable, __file__, "--serve-bare", str(bare_port)], env=env, log_file=work / "bare.log")
        processes += [real, bare]
        for port, process in ((real_port, real), (bare_port, bare)):
            wait_until(lambda p=port: httpx.get(f"http://127.0.0.1:{p}/openapi.json").status_code == 200, timeout=60,
                       what=f"server on {port}", process=process)
        ports = {"real": real_port, "bare": bare_port}
        for name, port in ports.items():  # warm both: connection pools, imports, caches
            asyncio.run(closed_loop(port, request_maker(f"warm-{name}"), clients=10, seconds=1.5))

        backend = "postgresql" if args.postgres else "sqlite"
        print(f"{backend}: POST /appeals (real) against a bare endpoint, {args.rounds} x {args.seconds:.0f} s "
              f"rounds each, interleaved", flush=True)
        for clients in (1, 10):
            totals = {name: {"ok": 0, "seconds": 0.0, "errors": 0, "lat": []} for name in ports}
            for r in range(args.rounds):
                order = list(ports) if r % 2 == 0 else list(reversed(ports))
                for name in order:
                    result = asyncio.run(closed_loop(ports[name], request_maker(f"{name}-{clients}-{r}"),
                                                     clients=clients, seconds=args.seconds))
                    t = totals[name]
                    t["ok"] += result.ok
                    t["seconds"] += result.seconds
                    t["errors"] += result.errors
                    t["lat"] += result.latencies_ms
                    print(f"  {clients:>2} clients round {r + 1} {name:<4} {result.rate:7.1f}/s  "
                          f"p99 {result.percentile(0.99):6.1f} ms  errors {result.errors} {result.statuses}",
                          flush=True)
            for name, t in totals.items():
                ordered = sorted(t["lat"])
                figures[f"{name}_{clients}c_per_s"] = round(t["ok"] / t["seconds"], 1)
                figures[f"{name}_{clients}c_p99_ms"] = round(ordered[int(0.99 * (len(ordered) - 1))], 1)
                figures[f"{name}_{clients}c_errors"] = t["errors"]
            figures[f"ratio_{clients}c"] = round(
                figures[f"real_{clients}c_per_s"] / figures[f"bare_{clients}c_per_s"], 3)

        peak = max(figures["real_1c_per_s"], figures["real_10c_per_s"])
        half = peak / 2
        steady = asyncio.run(open_loop(real_port, request_maker("half"), rate=half,
                                       seconds=max(10.0, args.seconds * 2)))
        figures.update({"half_peak_rate_per_s": round(half, 1), "half_peak_p50_ms": round(steady.percentile(0.5), 1),
                        "half_peak_p99_ms": round(steady.percentile(0.99), 1), "half_peak_errors": steady.errors})
    finally:
        for process in reversed(processes):
            stop(process, timeout=30)
        exits.close()
        shutil.rmtree(work, ignore_errors=True)

    ratio = min(figures["ratio_1c"], figures["ratio_10c"])
    print(f"\n{backend}, one uvicorn process each, same client, same run (rates in requests/s):")
    for clients in (1, 10):
        print(f"  {clients:>2} clients  real {figures[f'real_{clients}c_per_s']:7.1f}  "
              f"bare {figures[f'bare_{clients}c_per_s']:7.1f}  ratio {figures[f'ratio_{clients}c']:.2f}x  "
              f"(p99 real {figures[f'real_{clients}c_p99_ms']} ms, bare {figures[f'bare_{clients}c_p99_ms']} ms)")
    print(f"  open loop at half the peak ({half:.0f}/s): p50 {figures['half_peak_p50_ms']} ms, "
          f"p99 {figures['half_peak_p99_ms']} ms (target under 100 ms), {steady.errors} errors")
    print(json.dumps({"bench": "intake", "backend": backend, "seconds_per_round": args.seconds,
                      "rounds": args.rounds, **figures, "ratio_to_bare": ratio, "target_ratio": 0.7,
                      "met": ratio >= 0.7 and figures["half_peak_p99_ms"] < 100,
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


if __name__ == "__main__":
    main()
