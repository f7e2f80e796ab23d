"""`appealflow`: a thin command line over the library."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from appealflow.settings import get_settings

DEMO_PASSWORD = os.environ.get("APPEALFLOW_DEMO_PASSWORD", "demo-pass-12345")


def cmd_migrate(_: argparse.Namespace) -> None:
    from appealflow.models.schema import migrate

    migrate(get_settings().sqlalchemy_url)
    print("database schema is up to date")


def cmd_seed(args: argparse.Namespace) -> None:
    from appealflow.models.db import session_scope
    from appealflow.models.people import ensure_demo_staff
    from appealflow.models.reference import REFERENCE_DIR, load_reference_files

    with session_scope(get_settings().sqlalchemy_url) as session:
        counts = load_reference_files(session, Path(args.folder) if args.folder else REFERENCE_DIR)
        staff = ensure_demo_staff(session, DEMO_PASSWORD) if args.demo_staff else []
    print("loaded " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))
    if staff:
        print(f"demo staff (password {DEMO_PASSWORD!r}): {', '.join(staff)}")


def cmd_user_add(args: argparse.Namespace) -> None:
    from appealflow.models.db import session_scope
    from appealflow.models.enums import Role
    from appealflow.models.people import StaffError, add_user

    password = args.password or os.environ.get("APPEALFLOW_NEW_PASSWORD") or getpass.getpass("password: ")
    try:
        with session_scope(get_settings().sqlalchemy_url) as session:
            add_user(session, username=args.username, password=password, role=Role(args.role),
                     display_name=args.name, department_code=args.department)
    except StaffError as error:
        sys.exit(f"appealflow: {error}")
    print(f"added {args.role} {args.username}")


def cmd_user_key(args: argparse.Namespace) -> None:
    from sqlmodel import select

    from appealflow.models.db import session_scope
    from appealflow.models.people import StaffUser, issue_api_key

    with session_scope(get_settings().sqlalchemy_url) as session:
        user = session.exec(select(StaffUser).where(StaffUser.username == args.username)).first()
        if user is None:
            sys.exit(f"appealflow: no user {args.username!r}")
        print(issue_api_key(session, user, args.label))


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run("appealflow.api.app:app", host=args.host, port=args.port, log_level="warning")


def cmd_worker(args: argparse.Namespace) -> None:
    from appealflow.workers.worker import run_worker

    run_worker(burst=args.burst, name=args.name)


def cmd_calendar_set(args: argparse.Namespace) -> None:
    from datetime import date

    from appealflow.models.calendar import CalendarOverride
    from appealflow.models.db import session_scope

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
                    head.urban_management, ... (password {!r}); sign in at /docs"""


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cmd_up(args: argparse.Namespace) -> None:
    """Everything on embedded defaults: Redis, Prefect server and UI, API, workers, a mail catcher."""
    from appealflow.demo import post_demo_appeals
    from appealflow.models.db import session_scope
    from appealflow.models.people import ensure_demo_staff
    from appealflow.models.reference import load_reference_files
    from appealflow.models.schema import migrate
    from appealflow.services import MailCatcher, spawn, start_prefect_server, start_redis, stop, wait_until

    settings = get_settings()
    data = settings.data_dir.resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings.signing_key()
    children: list[subprocess.Popen] = []
    env = dict(os.environ, APPEALFLOW_DATA_DIR=str(data))
    mail = None
    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` as on Ctrl-C
    try:
        if not settings.redis_url:
            process, env["REDIS_URL"] = start_redis(data / "redis")
            children.append(process)
        migrate(settings.sqlalchemy_url)
        with session_scope(settings.sqlalchemy_url) as session:
            load_reference_files(session)
            if args.demo:
                ensure_demo_staff(session, DEMO_PASSWORD)
        print("starting the Prefect server (about 10 s)...", flush=True)
        process, env["PREFECT_API_URL"] = start_prefect_server(
            data / "prefect", args.prefect_port, ui=True, log_file=logs / "prefect.log")
        children.append(process)
        if not settings.smtp_url:
            mail = MailCatcher(data / "mail").start()
            env["APPEALFLOW_SMTP_URL"] = mail.apprise_url
        exe = str(Path(sys.executable).with_name("appealflow"))
        api_url = f"http://127.0.0.1:{args.api_port}"
        api = spawn([exe, "api", "--port", str(args.api_port)], env=env, log_file=logs / "api.log")
        children.append(api)
        children.append(spawn([exe, "scheduler"], env=env, log_file=logs / "scheduler.log"))
        for i in range(args.workers):
            children.append(spawn([exe, "worker", "--name", f"appealflow-worker-{i + 1}"], env=env,
                                  log_file=logs / f"worker-{i + 1}.log"))

        wait_until(lambda: httpx.get(f"{api_url}/health").status_code == 200, timeout=60, what="API",
                   process=api)
        codes = post_demo_appeals(api_url) if args.demo else []
        prefect_ui = env["PREFECT_API_URL"].removesuffix("/api")
        print(f"""
AppealFlow is running.
  API and its docs  {api_url}/docs
  Prefect UI        {prefect_ui}   (flow runs of dispatch-appeals)
  Redis             {env.get("REDIS_URL") or settings.redis_url}
  Database          {settings.sqlalchemy_url}
  Mail sent         {data / "mail" if mail else settings.smtp_url}
  Logs              {logs}
  Demo appeals      {", ".join(codes) or "-"}{DEMO_STAFF.format(DEMO_PASSWORD) if args.demo else ""}
Press Ctrl-C to stop.""", flush=True)
        while all(p.poll() is None for p in children):
            time.sleep(0.5)
        print("a component exited; stopping (see the logs)", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nstopping...")
    finally:
        for process in reversed(children):
            stop(process)
        if mail:
            mail.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("APPEALFLOW_LOG_LEVEL", "WARNING"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="appealflow", description=__doc__)
    commands = parser.add_subparsers(required=True)

    p = commands.add_parser("up", help="run the whole system on embedded defaults, with demo data")
    p.add_argument("--workers", type=int, default=2)
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
    p.add_argument("--name")
    p.set_defaults(func=cmd_worker)

    from appealflow.models.open311 import register_cli

    register_cli(commands)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
