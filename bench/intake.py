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

The photo mix (skip it with --no-photos): 20% of appeals carry two photos of about 3 MB (12
megapixels, each one unique), uploaded with the appeal's token to POST /appeals/{code}/files at 5
photos a second (2.5 photo-carrying appeals, the photo share of 12.5 appeals a second), while two
RQ workers on the files queue (as many as `up` starts on 2 cores) make their copies. Rounds of the 10-client text-only
closed loop alone and with that photo stream beside it alternate; their ratio is what photos cost
text intake. Processing keeps
up when every photo uploaded is ready within seconds of the last upload; then a burst of 40 photos
gives the workers' capacity (photos made ready per second, first upload to last copy).
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

PHOTO_SIZE = (4032, 3024)  # a phone's 12 megapixels
PHOTOS_PER_S = 5.0
WORKERS = 2


def photo_bytes() -> bytes:
    """A photo-like JPEG of about 3 MB: gradients under camera-like noise."""
    import io

    from PIL import Image, ImageChops

    gradient = Image.linear_gradient("L").resize(PHOTO_SIZE)
    noise = Image.effect_noise(PHOTO_SIZE, 17)
    picture = Image.merge("RGB", (ImageChops.add(gradient, noise, 2, 0),
                                  ImageChops.add(gradient.transpose(Image.Transpose.ROTATE_180), noise, 2, 0),
                                  gradient))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def unique(photo: bytes, n: int) -> bytes:
    """The same picture with a JPEG comment of its own: other bytes, so stored and processed anew."""
    note = f"bench photo {n} {uuid.uuid4().hex}".encode()
    return photo[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + photo[2:]


def upload_request(code: str, token: str, photos: list[bytes], n: int) -> bytes:
    boundary = f"benchboundary{uuid.uuid4().hex}"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="IMG_{n}_{i}.jpg"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n".encode() + photo + b"\r\n" for i, photo in enumerate(photos))
    body += f"--{boundary}--\r\n".encode()
    head = [f"POST /appeals/{code}/files?token={token} HTTP/1.1", "Host: 127.0.0.1",
            f"Content-Type: multipart/form-data; boundary={boundary}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body

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


def _ready_photos(url: str) -> tuple[int, int]:
    """(photos ready, photos still processing), read from the database."""
    from sqlalchemy import func, select

    from appealflow.models.files.attachments import Attachment
    from appealflow.models.storage.db import session_scope

    with session_scope(url) as session:
        counts = dict(session.execute(select(Attachment.state, func.count()).group_by(Attachment.state)).all())
    return counts.get("ready", 0), counts.get("processing", 0)


def _wait_drained(url: str, timeout: float) -> float:
    """Seconds until no photo is processing (or `timeout`)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout and _ready_photos(url)[1]:
        time.sleep(0.1)
    return time.perf_counter() - started


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far, from /proc."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def photo_mix(port: int, args, url: str, pids: dict[str, list[int]]) -> dict:
    photo = photo_bytes()
    print(f"\nphoto mix: photos of {len(photo) / 1e6:.1f} MB ({PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}), two per photo-carrying "
          f"appeal, {PHOTOS_PER_S:g} photos/s beside the 10-client text-only closed loop", flush=True)
    needed = int(PHOTOS_PER_S / 2 * args.seconds * args.rounds) + 40
    filed = asyncio.run(closed_loop(port, request_maker("photo-appeals"), clients=10, seconds=30.0,
                                    keep_bodies=True, stop_after=needed))
    holders = [json.loads(body) for body in filed.bodies][:needed]
    holders = [(h["code"], h["access_token"]) for h in holders]
    # Built before any round, so the client spends no CPU on megabytes while it measures.
    ready = iter([upload_request(code, token, [unique(photo, 2 * k), unique(photo, 2 * k + 1)], k)
                  for k, (code, token) in enumerate(holders)])

    def uploads(n: int) -> bytes:
        return next(ready)

    alone = {"ok": 0, "seconds": 0.0}
    mixed = {"ok": 0, "seconds": 0.0}
    uploaded = processing_lag = 0.0
    upload_p99 = []
    async def together(label: str, with_photos: bool):
        text = closed_loop(port, request_maker(label), clients=10, seconds=args.seconds)
        if not with_photos:
            return await text, None
        return await asyncio.gather(text, open_loop(port, uploads, rate=PHOTOS_PER_S / 2, seconds=args.seconds))

    for r in range(args.rounds):
        for with_photos in ((False, True) if r % 2 == 0 else (True, False)):
            before = {name: cpu_seconds(p) for name, p in pids.items()}
            text, photos = asyncio.run(together(f"mix-{r}-{with_photos}", with_photos))
            used = {name: cpu_seconds(p) - before[name] for name, p in pids.items()}
            into = mixed if with_photos else alone
            into["ok"] += text.ok
            into["seconds"] += text.seconds
            line = (f"  round {r + 1} text {'with photos' if with_photos else 'alone      '} {text.rate:7.1f}/s  cpu/s "
                    + " ".join(f"{name} {seconds / text.seconds:.2f}" for name, seconds in used.items()))
            if photos is not None:
                lag = _wait_drained(url, 60)
                processing_lag = max(processing_lag, lag)
                uploaded += 2 * photos.ok
                upload_p99.append(photos.percentile(0.99))
                line += (f"   uploads {photos.ok} ({2 * photos.ok} photos, p99 {photos.percentile(0.99):.0f} ms, "
                         f"errors {photos.errors} {photos.statuses}), all ready {lag:.1f} s after the last")
            print(line, flush=True)
    # The workers' capacity: a burst of 40 photos, timed from the first upload to the last ready.
    burst_start = time.perf_counter()
    ready_before = _ready_photos(url)[0]
    burst = asyncio.run(closed_loop(port, uploads, clients=4, seconds=60.0, stop_after=20))
    _wait_drained(url, 120)
    burst_seconds = time.perf_counter() - burst_start
    made = _ready_photos(url)[0] - ready_before
    figures = {
        "text_alone_10c_per_s": round(alone["ok"] / alone["seconds"], 1),
        "text_with_photos_10c_per_s": round(mixed["ok"] / mixed["seconds"], 1),
        "photos_uploaded": int(uploaded), "photo_upload_p99_ms": round(max(upload_p99), 1),
        "photos_ready_after_last_upload_s": round(processing_lag, 2),
        "burst_photos": made, "burst_photos_per_s": round(made / burst_seconds, 2), "burst_errors": burst.errors,
    }
    figures["ratio_text_with_photos"] = round(
        figures["text_with_photos_10c_per_s"] / figures["text_alone_10c_per_s"], 3)
    print(f"  text intake with photos / alone: {figures['ratio_text_with_photos']:.2f}x (target >= 0.90); "
          f"{WORKERS} files workers made {made} photos ready in {burst_seconds:.1f} s: "
          f"{figures['burst_photos_per_s']:.1f} photos/s (target >= {PHOTOS_PER_S:g})", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per endpoint and concurrency level")
    parser.add_argument("--postgres", action="store_true",
                        help="PostgreSQL: DATABASE_URL if it names one, else an embedded server")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the real API process into FILE")
    parser.add_argument("--no-photos", action="store_true", help="skip the photo mix")
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
                   APPEALFLOW_RATE_LIMIT_INTAKE="100000000/minute", APPEALFLOW_RATE_LIMIT_TRACKING="100000000/minute",
                   APPEALFLOW_LOG_LEVEL="WARNING")
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

        if not args.no_photos:
            # Two, as `appealflow up` runs on 2 cores, on the files queue alone: dispatching the
            # thousands of appeals this bench files is bench/dispatch.py's to measure, not intake's.
            workers = [spawn([exe, "worker", "--queues", "files", "--name", f"bench-worker-{i}"], env=env,
                             log_file=work / f"worker-{i}.log") for i in range(WORKERS)]
            processes += workers
            figures.update(photo_mix(real_port, args, url, {"api": [real.pid], "workers": [w.pid for w in workers],
                                                            "client": [os.getpid()]}))
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
    photos_met = args.no_photos or (figures["ratio_text_with_photos"] >= 0.9
                                    and figures["burst_photos_per_s"] >= PHOTOS_PER_S
                                    and figures["photos_ready_after_last_upload_s"] < 10)
    print(json.dumps({"bench": "intake", "backend": backend, "seconds_per_round": args.seconds,
                      "rounds": args.rounds, **figures, "ratio_to_bare": ratio, "target_ratio": 0.7,
                      "met": ratio >= 0.7 and figures["half_peak_p99_ms"] < 100, "photos_met": photos_met,
                      "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


if __name__ == "__main__":
    main()
