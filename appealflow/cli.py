"""`appealflow`: a thin command line over the library."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from appealflow.settings import get_settings


def cmd_migrate(_: argparse.Namespace) -> None:
    from models.schema import migrate

    migrate(get_settings().sqlalchemy_url)
    print("database schema is up to date")


def cmd_seed(args: argparse.Namespace) -> None:
    from models.db import session_scope
    from models.reference import REFERENCE_DIR, load_reference_files

    with session_scope(get_settings().sqlalchemy_url) as session:
        counts = load_reference_files(session, Path(args.folder) if args.folder else REFERENCE_DIR)
    print("loaded " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run("api.app:app", host=args.host, port=args.port, log_level="warning")


def cmd_worker(args: argparse.Namespace) -> None:
    from workers.worker import run_worker

    run_worker(burst=args.burst, name=args.name)


def cmd_up(args: argparse.Namespace) -> None:
    """Everything on embedded defaults: Redis, Prefect server and UI, API, workers, a mail catcher."""
    from appealflow.demo import post_demo_appeals
    from appealflow.services import MailCatcher, spawn, start_prefect_server, start_redis, stop, wait_until
    from models.db import session_scope
    from models.reference import load_reference_files
    from models.schema import migrate

    settings = get_settings()
    data = settings.data_dir.resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    settings.signing_key()
    children: list[subprocess.Popen] = []
    env = dict(os.environ, APPEALFLOW_DATA_DIR=str(data))
    mail = None
    try:
        if not settings.redis_url:
            process, env["REDIS_URL"] = start_redis(data / "redis")
            children.append(process)
        migrate(settings.sqlalchemy_url)
        with session_scope(settings.sqlalchemy_url) as session:
            load_reference_files(session)
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
  Demo appeals      {", ".join(codes) or "-"}
Press Ctrl-C to stop.""", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
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
    p.set_defaults(func=cmd_seed)

    p = commands.add_parser("api", help="serve the HTTP API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_api)

    p = commands.add_parser("worker", help="run an RQ worker for dispatch and delivery")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.add_argument("--name")
    p.set_defaults(func=cmd_worker)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
