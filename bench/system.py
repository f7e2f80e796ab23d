"""The whole system for the end-to-end and soak benchmarks, as `appealflow up` runs it: Redis, a
Prefect server, one API process, dispatch workers, a delivery worker, and a local SMTP receiver
(on 127.0.0.1) that notes when each message arrives and which appeal code its subject names.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.mailsink import MailSink  # noqa: E402

CODE = re.compile(r"\d{6}-[0-9A-Z]{7}")
BENCH_DOMAIN = "bench.test"


def reference_tree(revision: str, into: Path) -> Path:
    """The project as it was at `revision` (a commit of this repository), laid out as the installed
    `appealflow` package, for running a reference code path beside the current one in the same
    benchmark: a process started with PYTHONPATH=<the tree> imports that code (the editable install's
    finder comes after the path), with this checkout's dependencies. Returns the tree's root."""
    import subprocess
    import tarfile
    from io import BytesIO

    source, tree = into / "source", into / "tree"
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    (tree / "appealflow").mkdir(parents=True)
    for module in (source / "appealflow").glob("*.py"):
        (tree / "appealflow" / module.name).symlink_to(module)
    for folder in ("models", "api", "flows", "workers", "notifications"):
        (tree / "appealflow" / folder).symlink_to(source / folder)
    return tree


def appealflow_command(tree: Path | None) -> tuple[list[str], dict[str, str]]:
    """How to run `appealflow ...`: this checkout's, or a reference tree's (with its PYTHONPATH)."""
    if tree is None:
        return [str(Path(sys.executable).with_name("appealflow"))], {}
    # -P: without it `python -c` puts the working directory first on the path, and this checkout's
    # own appealflow/ (with the editable finder behind it) would be imported instead of the tree's.
    command, env = [sys.executable, "-P", "-c"], dict(os.environ, PYTHONPATH=str(tree))
    import subprocess

    imported = subprocess.run([*command, "import appealflow.notifications as n; print(n.__file__)"], env=env,
                              check=True, capture_output=True, text=True).stdout.strip()
    if not Path(imported).is_relative_to(tree):
        raise RuntimeError(f"the reference tree's code is not what gets imported: {imported}")
    return [*command, "from appealflow.cli import main; main()"], {"PYTHONPATH": str(tree)}


def revision_name(revision: str) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", revision], check=True,
                          capture_output=True, text=True).stdout.strip()[:90]


class Receiver(MailSink):
    """The local SMTP receiver (bench/mailsink.py), read as: every message's arrival, recipient and
    the appeal code its subject names."""

    def department_notices(self) -> dict[str, float]:
        """The first notice to a department (not to a requester at the bench's domain) per code."""
        first: dict[str, float] = {}
        for at, rcpt, subject in self.arrivals():
            found = CODE.search(subject)
            if found and not rcpt.endswith("@" + BENCH_DOMAIN) and found.group(0) not in first:
                first[found.group(0)] = at
        return first


class System:
    def __init__(self, *, postgres: bool, dispatch_workers: int = 2, delivery_workers: int = 1,
                 extra_env: dict[str, str] | None = None, prefect_on_postgres: bool = True):
        self.postgres = postgres
        # On SQLite, Prefect's server answers 503 when its database is busy (flow runs created while
        # its services write), and clients back off 2, 4, 8 s: seconds added to a dispatch batch.
        self.prefect_on_postgres = prefect_on_postgres
        self.dispatch_workers = dispatch_workers
        self.delivery_workers = delivery_workers
        self.extra_env = extra_env or {}
        self.work = Path(tempfile.mkdtemp(prefix="appealflow-system-"))
        self.exits = ExitStack()
        self.processes: dict[str, object] = {}

    def __enter__(self) -> System:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        from appealflow.models.city.reference import load_reference_files
        from appealflow.models.storage.db import session_scope
        from appealflow.models.storage.schema import migrate
        from appealflow.runtime.services import free_port, spawn, start_prefect_server, start_redis, wait_until
        from appealflow.settings import get_settings
        from tests.postgres import new_database, postgres_server

        redis_process, redis_url = start_redis(self.work / "redis")
        self.processes["redis"] = redis_process
        prefect_database = None
        if self.postgres:
            server = self.exits.enter_context(postgres_server(self.work / "pgdata"))
            database_url = new_database(server)
            if self.prefect_on_postgres:  # as a deployment on PostgreSQL would run Prefect's server too
                prefect_database = "postgresql+asyncpg://" + new_database(server).split("://", 1)[1]
        else:
            database_url = f"sqlite:///{self.work / 'appealflow.db'}"
        print(f"starting a Prefect server (its database on {'PostgreSQL' if prefect_database else 'SQLite'})...",
              flush=True)
        if prefect_database:
            os.environ["PREFECT_API_DATABASE_CONNECTION_URL"] = prefect_database
        try:
            prefect_process, prefect_api = start_prefect_server(self.work / "prefect", ui=False,
                                                                log_file=self.work / "logs" / "prefect.log")
        finally:
            os.environ.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
        self.processes["prefect"] = prefect_process
        self.receiver = Receiver(self.work / "mail").start()
        self.exits.callback(self.receiver.stop)
        self.api_port = free_port()
        self.env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, PREFECT_API_URL=prefect_api,
                        APPEALFLOW_DATA_DIR=str(self.work / "var"), PREFECT_LOGGING_LEVEL="WARNING",
                        APPEALFLOW_SMTP_URL=f"mailto://127.0.0.1:{self.receiver.port}?from=12345@appealflow.test",
                        APPEALFLOW_PUBLIC_URL=f"http://127.0.0.1:{self.api_port}",
                        # One client address posts everything: the limit stays on (its Redis check is
                        # paid) but never trips.
                        APPEALFLOW_RATE_LIMIT_INTAKE="100000000/minute", **self.extra_env)
        os.environ.update(self.env)
        get_settings.cache_clear()
        self.url = get_settings().sqlalchemy_url
        migrate(self.url)
        with session_scope(self.url) as session:
            load_reference_files(session)
        from appealflow import metrics

        metrics.reset(get_settings())
        exe = str(Path(sys.executable).with_name("appealflow"))
        logs = self.work / "logs"
        self.processes["api"] = spawn([exe, "api", "--port", str(self.api_port)], env=self.env,
                                      log_file=logs / "api.log")
        for i in range(self.dispatch_workers):
            self.processes[f"dispatch-{i + 1}"] = spawn(
                [exe, "worker", "--queues", "dispatch", "--name", f"bench-dispatch-{i + 1}"], env=self.env,
                log_file=logs / f"dispatch-{i + 1}.log")
        for i in range(self.delivery_workers):
            self.processes[f"delivery-{i + 1}"] = spawn(
                [exe, "worker", "--queues", "delivery", "--name", f"bench-delivery-{i + 1}"], env=self.env,
                log_file=logs / f"delivery-{i + 1}.log")
        self.api = f"http://127.0.0.1:{self.api_port}"
        wait_until(lambda: httpx.get(f"{self.api}/health").status_code == 200, timeout=120, what="API",
                   process=self.processes["api"])
        import redis
        from rq import Worker

        connection = redis.Redis.from_url(redis_url)
        workers = self.dispatch_workers + self.delivery_workers
        wait_until(lambda: len(Worker.all(connection=connection)) == workers, timeout=180, what="workers")

    def rss_mb(self) -> dict[str, float]:
        import psutil

        sizes = {}
        for name, process in self.processes.items():
            if name in ("api",) or name.startswith(("dispatch-", "delivery-")):
                try:
                    sizes[name] = round(psutil.Process(process.pid).memory_info().rss / 2**20, 1)
                except psutil.Error:
                    sizes[name] = float("nan")
        return sizes

    def alive(self) -> dict[str, bool]:
        return {name: process.poll() is None for name, process in self.processes.items()}

    def log_errors(self) -> int:
        """Tracebacks written by the API and workers (each a failure the operator would see)."""
        return sum(log.read_text(errors="replace").count("Traceback") for log in (self.work / "logs").glob("*.log"))

    def __exit__(self, *_) -> None:
        from appealflow.runtime.services import stop

        for process in reversed(list(self.processes.values())):
            stop(process, timeout=20)
        self.exits.close()
        if os.environ.get("APPEALFLOW_BENCH_KEEP"):  # the logs, for a look at what happened
            print(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def appeal_body(n: int) -> dict:
    """Appeals the catalogue routes to a department (so each has a department's notice), over several
    departments, from requesters at the bench's own mail domain."""
    kinds = [
        ("楼上漏水", "楼上邻居家漏水到我家，协商无果。", "neighbourhood_disputes", "shinan", "badaguan"),
        ("工地夜间施工噪音", "每天晚上十一点以后还在施工，影响休息", "construction_noise", "shinan", "badaguan"),
        ("小区停水两天", "小区停水两天没有任何通知", "water_supply_interruption", "shibei", "taidong"),
        ("垃圾清运不及时", "小区垃圾三天没有清运，气味很大", "garbage_sanitation", "licang", "licun"),
    ]
    title, text, category, district, street = kinds[n % len(kinds)]
    return {"type": "complaint", "title": f"{title} {n}", "text": text, "category": category,
            "location": {"district": district, "street": street},
            "requester": {"email": f"r{n}@{BENCH_DOMAIN}"}}
