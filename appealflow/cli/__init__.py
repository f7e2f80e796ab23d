"""`appealflow`: a thin command line over the library."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from appealflow.logs import configure as configure_logging
from appealflow.settings import get_settings


def cmd_migrate(_: argparse.Namespace) -> None:
    from appealflow.models.storage.schema import migrate

    migrate(get_settings().sqlalchemy_url)
    print("database schema is up to date")


def cmd_seed(args: argparse.Namespace) -> None:
    from appealflow.models.city.people import ensure_demo_staff
    from appealflow.models.city.reference import REFERENCE_DIR, load_reference_files
    from appealflow.models.storage.db import session_scope

    with session_scope(get_settings().sqlalchemy_url) as session:
        counts = load_reference_files(session, Path(args.folder) if args.folder else REFERENCE_DIR)
        staff = ensure_demo_staff(session, get_settings().demo_password) if args.demo_staff else []
    print("loaded " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))
    if staff:
        print(f"demo staff (password {get_settings().demo_password!r}): {', '.join(staff)}")


def cmd_user_add(args: argparse.Namespace) -> None:
    from appealflow.models.appeals.enums import Role
    from appealflow.models.city.people import StaffError, add_user
    from appealflow.models.storage.db import session_scope

    password = args.password or get_settings().new_password or getpass.getpass("password: ")
    try:
        with session_scope(get_settings().sqlalchemy_url) as session:
            add_user(session, username=args.username, password=password, role=Role(args.role),
                     display_name=args.name, department_code=args.department, notify=args.notify)
    except StaffError as error:
        sys.exit(f"appealflow: {error}")
    print(f"added {args.role} {args.username}")


def cmd_user_key(args: argparse.Namespace) -> None:
    from sqlmodel import select

    from appealflow.models.city.people import StaffUser, issue_api_key
    from appealflow.models.storage.db import session_scope

    with session_scope(get_settings().sqlalchemy_url) as session:
        user = session.exec(select(StaffUser).where(StaffUser.username == args.username)).first()
        if user is None:
            sys.exit(f"appealflow: no user {args.username!r}")
        print(issue_api_key(session, user, args.label))


def cmd_api(args: argparse.Namespace) -> None:
    from appealflow import metrics

    metrics.prepare()  # before anything imports prometheus-client
    import uvicorn

    from appealflow.api.server import HeaderDeadlineProtocol

    uvicorn.run("appealflow.api.app:app", host=args.host, port=args.port, log_level="warning",
                http=HeaderDeadlineProtocol, timeout_keep_alive=5)


def cmd_worker(args: argparse.Namespace) -> None:
    from appealflow import metrics

    metrics.prepare()  # before Prefect imports prometheus-client
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    if not args.burst and (queues is None or "dispatch" in queues):
        from appealflow.workers.first_batch import route_first_batch

        route_first_batch()  # before Prefect and RQ load: a worker restarted often still routes
    from appealflow.workers.worker import run_worker

    run_worker(burst=args.burst, name=args.name, queues=queues)


def _queue_list(value: str) -> str:
    from appealflow.workers.queues import QUEUES

    unknown = [q for q in value.split(",") if q.strip() and q.strip() not in QUEUES]
    if unknown or not value.strip(","):
        raise argparse.ArgumentTypeError(f"queues are {', '.join(QUEUES)}; got {value!r}")
    return value


def cmd_calendar_set(args: argparse.Namespace) -> None:
    from datetime import date

    from appealflow.models.clocks.calendar import CalendarOverride
    from appealflow.models.storage.db import session_scope

    try:
        day = date.fromisoformat(args.day)
    except ValueError:
        sys.exit(f"appealflow: {args.day!r} is not a date like 2027-02-20")
    with session_scope(get_settings().sqlalchemy_url) as session:
        session.merge(CalendarOverride(day=day, working=args.working, note=args.note))
    print(f"{day} is now a {'working day' if args.working else 'day off'}")


def cmd_scheduler(_: argparse.Namespace) -> None:
    from appealflow.flows.escalation import serve

    serve()


DEMO_STAFF = """
  Demo staff        operator, dispatcher, supervisor, admin, handler.urban_management,
                    head.urban_management, ... (password {!r}); sign in at /staff/sign-in or /docs"""


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def cmd_up(args: argparse.Namespace) -> None:
    """Everything on embedded defaults: Redis, Prefect server and UI, API, workers, a mail catcher,
    each child supervised: one that exits is started again with backoff, the others keep running."""
    from appealflow import metrics
    from appealflow.models.city.people import ensure_demo_staff
    from appealflow.models.city.reference import load_reference_files
    from appealflow.models.routing.classifier import embedder
    from appealflow.models.routing.classifier_store import ensure_active
    from appealflow.models.routing.policy_qa import import_sample_if_empty
    from appealflow.models.storage.db import session_scope
    from appealflow.models.storage.schema import migrate
    from appealflow.runtime.demo import post_demo_appeals
    from appealflow.runtime.services import (
        MailCatcher,
        SmsSink,
        free_port,
        spawn,
        spawn_prefect_server,
        spawn_redis,
        start_redis,
        wait_until,
    )
    from appealflow.runtime.supervisor import Supervisor

    settings = get_settings()
    data = settings.data_dir.resolve()
    metrics.reset(settings)  # a new run counts from zero (prometheus-client's multiprocess files)
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings.signing_key()
    supervisor = Supervisor(say=_say)
    env = dict(os.environ, APPEALFLOW_DATA_DIR=str(data))
    mail = sms = None
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` as on Ctrl-C
    try:
        if not settings.redis_url:
            redis_port = free_port()
            process, env["REDIS_URL"] = start_redis(data / "redis", redis_port)
            # Restarted on the same port and folder: same URL, and its append-only file brings the queue back.
            supervisor.add("redis", lambda: spawn_redis(data / "redis", redis_port), process)
        migrate(settings.sqlalchemy_url)
        with session_scope(settings.sqlalchemy_url) as session:
            load_reference_files(session)
            if settings.routing_model != "off":
                _say(f"loading the {settings.routing_model} routing model (built from the category tree once per "
                     "machine, then cached)...")
                try:
                    ensure_active(session, settings.routing_model, settings.model_cache_dir)
                except Exception as error:  # the keyword rules route meanwhile; workers try again
                    _say(f"the routing model did not load ({error}); the keyword rules route until it does")
            if args.demo:
                ensure_demo_staff(session, get_settings().demo_password)
                import_sample_if_empty(session, embedder(settings.embedding_backend).embed)
        _say(f"starting the Prefect server (log: {logs / 'prefect.log'}); "
             "it takes from 10 s to a couple of minutes on a busy machine...")
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{args.prefect_port}/api"
        # Supervised from the first moment, so a stop while it starts still stops it.
        supervisor.add("prefect server", lambda: spawn_prefect_server(
            data / "prefect", args.prefect_port, ui=True, log_file=logs / "prefect.log"))

        def prefect_ready() -> bool:
            supervisor.check()
            return httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200

        wait_until(prefect_ready, timeout=600, what="the Prefect server", progress=lambda s: _say(
            f"  still waiting for the Prefect server ({s:.0f} s so far; it answers once its database is ready)"))
        _say("Prefect server is up")
        if not settings.smtp_url:
            mail = MailCatcher(data / "mail").start()
            env["APPEALFLOW_SMTP_URL"] = mail.apprise_url
        if not settings.sms_url:  # so a requester who gave only a phone hears from us in the demo too
            sms = SmsSink(data / "sms").start()
            env["APPEALFLOW_SMS_URL"] = sms.apprise_url
        exe = str(Path(sys.executable).with_name("appealflow"))
        api_url = f"http://127.0.0.1:{args.api_port}"
        if "APPEALFLOW_PUBLIC_URL" not in env:  # the links in messages open this API
            env["APPEALFLOW_PUBLIC_URL"] = api_url

        def child(name: str, argv: list[str], log_name: str, threads: int = 1) -> None:
            # Each process embeds with its share of the cores, not OpenMP's default of all of them:
            # two workers each running two threads on two cores spent their time switching.
            own = env if "OMP_NUM_THREADS" in os.environ else dict(env, OMP_NUM_THREADS=str(threads))
            supervisor.add(name, lambda: spawn([exe, *argv], env=own, log_file=logs / log_name))

        child("api", ["api", "--port", str(args.api_port)], "api.log")
        child("scheduler", ["scheduler"], "scheduler.log")
        # Dispatch workers never send mail: a hung mail server must not hold up routing. They do the
        # embedding, so they share the cores between them.
        share = max(1, (os.cpu_count() or 1) // max(1, args.workers))
        for i in range(args.workers):
            child(f"worker {i + 1}", ["worker", "--queues", "dispatch,files", "--name", f"appealflow-worker-{i + 1}"],
                  f"worker-{i + 1}.log", threads=share)
        for i in range(args.delivery_workers):
            child(f"delivery worker {i + 1}", ["worker", "--queues", "delivery", "--name",
                                               f"appealflow-delivery-{i + 1}"], f"delivery-{i + 1}.log")

        def api_ready() -> bool:
            supervisor.check()  # keep supervising while we wait
            return httpx.get(f"{api_url}/health").status_code == 200

        wait_until(api_ready, timeout=120, what="API",
                   progress=lambda s: _say(f"  waiting for the API ({s:.0f} s)"))
        codes = post_demo_appeals(api_url) if args.demo else []
        prefect_ui = env["PREFECT_API_URL"].removesuffix("/api")
        print(f"""
AppealFlow is running.
  File an appeal    {api_url}/file   (citizens; follow one at {api_url}/track)
  Staff pages       {api_url}/work   (handlers, dispatchers; supervisors at {api_url}/supervise)
  Public figures    {api_url}/open
  API and its docs  {api_url}/docs   (readiness: {api_url}/health/ready)
  Prefect UI        {prefect_ui}   (flow runs of dispatch-appeals)
  Redis             {env.get("REDIS_URL") or settings.redis_url}
  Database          {settings.sqlalchemy_url}
  Mail sent         {data / "mail" if mail else settings.smtp_url}
  SMS sent          {data / "sms" if sms else settings.sms_url}
  Logs              {logs}
  Demo appeals      {", ".join(codes) or "-"}{DEMO_STAFF.format(settings.demo_password) if args.demo else ""}
A component that exits is restarted. Press Ctrl-C (or send SIGTERM) to stop.""", flush=True)
        supervisor.run()
    except KeyboardInterrupt:
        _say("stopping...")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the shutdown short
        started = time.monotonic()
        supervisor.stop_all()
        if mail:
            mail.stop()
        if sms:
            sms.stop()
        _say(f"stopped in {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    parser = argparse.ArgumentParser(prog="appealflow", description=__doc__)
    commands = parser.add_subparsers(required=True)

    p = commands.add_parser("up", help="run the whole system on embedded defaults, with demo data")
    p.add_argument("--workers", type=int, default=2, help="dispatch workers")
    p.add_argument("--delivery-workers", type=int, default=1, help="workers that only send notifications")
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--prefect-port", type=int, default=4200)
    p.add_argument("--no-demo", dest="demo", action="store_false")
    p.set_defaults(func=cmd_up)

    commands.add_parser("migrate", help="bring the database schema up to date").set_defaults(func=cmd_migrate)

    p = commands.add_parser("seed", help="load departments, categories, routing rules and deadline policies")
    p.add_argument("--folder", help="a folder of reference YAML files (default: the bundled city)")
    p.add_argument("--demo-staff", action="store_true", help="also add a demo account for every role")
    p.set_defaults(func=cmd_seed)

    user = commands.add_parser("user", help="staff accounts").add_subparsers(required=True)
    p = user.add_parser("add", help="add a member of staff")
    p.add_argument("username")
    p.add_argument("--role", required=True,
                   choices=["operator", "dispatcher", "handler", "department_head", "supervisor", "admin"])
    p.add_argument("--department", help="for handlers and department heads")
    p.add_argument("--name", help="display name")
    p.add_argument("--notify", help="where to tell them of appeals assigned to them: mailto:ADDRESS or an Apprise URL")
    p.add_argument("--password", help="default: APPEALFLOW_NEW_PASSWORD, else asked")
    p.set_defaults(func=cmd_user_add)
    p = user.add_parser("key", help="issue an API key acting as this user (printed once)")
    p.add_argument("username")
    p.add_argument("--label", default="machine client")
    p.set_defaults(func=cmd_user_key)

    p = commands.add_parser("api", help="serve the HTTP API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_api)

    calendar = commands.add_parser("calendar", help="the working-day calendar").add_subparsers(required=True)
    p = calendar.add_parser("set", help="declare a day a working day or a day off (overrides the holiday data)")
    p.add_argument("day", help="YYYY-MM-DD")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--working", dest="working", action="store_true")
    kind.add_argument("--off", dest="working", action="store_false")
    p.add_argument("--note")
    p.set_defaults(func=cmd_calendar_set)

    commands.add_parser("scheduler", help="serve the scheduled deadline sweep (a Prefect deployment)").set_defaults(
        func=cmd_scheduler)

    p = commands.add_parser("worker", help="run an RQ worker for dispatch and delivery")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument("--name", help="a stable name (restarting under it is fine once the old process is gone)")
    p.add_argument("--queues", type=_queue_list, default=None,
                   help="comma-separated: dispatch, delivery (default both); `up` runs delivery apart")
    p.set_defaults(func=cmd_worker)

    from appealflow.cli.open311 import register_cli

    register_cli(commands)
    from appealflow.cli.model import register_model_cli

    register_model_cli(commands)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
