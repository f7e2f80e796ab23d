"""Real services for the tests: Redis, PostgreSQL, a Prefect server, API and worker processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from appealflow.models.db import engine_for, session_scope
from appealflow.models.reference import load_reference_files
from appealflow.models.schema import migrate
from appealflow.services import free_port, spawn, start_prefect_server, start_redis, stop, wait_until
from appealflow.settings import get_settings
from tests.postgres import new_database
from tests.postgres import postgres_server as postgres_server_for
from tests.receivers import HttpReceiver, SmtpReceiver

BIN = Path(sys.executable).parent
# Prefect reads its settings when first imported, which collecting the tests does: name the
# server's address now, or in-process flow runs would start an ephemeral server of their own.
PREFECT_PORT = free_port()
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{PREFECT_PORT}/api"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("appealflow")


def _xdist_worker_number() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


@pytest.fixture(scope="session")
def redis_url(workdir) -> Iterator[str]:
    """REDIS_URL when given (a database of its own per parallel test process, since tests flush
    theirs); otherwise the Redis the project brings itself."""
    if os.environ.get("REDIS_URL"):
        base = os.environ["REDIS_URL"].split("?")[0].rstrip("/")
        if base.count("/") > 2:  # redis://host:port/N: the database number goes
            base = base.rsplit("/", 1)[0]
        yield f"{base}/{_xdist_worker_number() % 16}"
        return
    process, url = start_redis(workdir / "redis")
    yield url
    stop(process)


@pytest.fixture(scope="session")
def prefect_api(workdir) -> Iterator[str]:
    process, api = start_prefect_server(workdir / "prefect", PREFECT_PORT, ui=False,
                                        log_file=workdir / "prefect.log")
    assert api == os.environ["PREFECT_API_URL"]
    yield api
    stop(process)


@pytest.fixture(scope="session")
def postgres_server(workdir) -> Iterator[str]:
    """A PostgreSQL server: DATABASE_URL when it names one, otherwise one started here."""
    with postgres_server_for(workdir / "pgdata") as url:
        yield url


def _migrated_and_seeded(url: str) -> None:
    settings_url = url if url.startswith("sqlite") else "postgresql+psycopg://" + url.split("://", 1)[1]
    migrate(settings_url)
    with session_scope(settings_url) as session:
        load_reference_files(session)
    engine_for(settings_url).dispose()  # a template database must have no connections left


@pytest.fixture(scope="session")
def sqlite_template(workdir) -> Path:
    """Migrated and seeded once; each test gets a copy of the file."""
    path = workdir / "template.db"
    _migrated_and_seeded(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server) -> str:
    """Migrated and seeded once; each test's database is created from it."""
    url = new_database(postgres_server)
    _migrated_and_seeded(url)
    return url.split("?")[0].rsplit("/", 1)[1]


# Tests about storage (claims, races, SQL figures) run on both backends. A long walk through the
# whole system runs on one, marked with these, so that between them every walk covers both backends
# and the suite stays fast.
on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh, migrated, seeded database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "appealflow.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    return new_database(request.getfixturevalue("postgres_server"),
                        template=request.getfixturevalue("postgres_template"))


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def env(database_url, redis_url, prefect_api, smtp, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment every process of one test shares, applied to this process too."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    values = {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PREFECT_API_URL": prefect_api,
        "APPEALFLOW_DATA_DIR": str(tmp_path / "var"), "APPEALFLOW_SMTP_URL": smtp.apprise_url,
        "APPEALFLOW_DELIVERY_BACKOFF_SECONDS": "0.2", "APPEALFLOW_RECONCILE_INTERVAL_SECONDS": "0.5",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # Tests post hundreds of appeals from one address; tests/test_security.py turns limits on.
        "APPEALFLOW_RATE_LIMITS_ENABLED": "false",
        # These tests pin the keyword rules' routing; tests/test_routing_model.py turns the model on.
        "APPEALFLOW_ROUTING_MODEL": "off",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()
    engine_for(get_settings().sqlalchemy_url).dispose()


class Stack:
    """API and worker processes of one test, stopped at its end."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env = dict(os.environ, **env)
        self.logs = logs
        self.workers: list[subprocess.Popen] = []
        self.api: subprocess.Popen | None = None
        self.api_url = ""

    def _spawn(self, args: list[str], log_name: str, **extra_env: str) -> subprocess.Popen:
        return spawn([str(BIN / "appealflow"), *args], env=dict(self.env, **extra_env),
                     log_file=self.logs / log_name)

    def start_api(self) -> str:
        port = free_port()
        self.api = self._spawn(["api", "--port", str(port)], "api.log")
        self.api_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{self.api_url}/health").status_code == 200, timeout=60,
                   what="API", process=self.api)
        return self.api_url

    def start_worker(self, **extra_env: str) -> subprocess.Popen:
        process = self._spawn(["worker"], f"worker-{len(self.workers) + 1}.log", **extra_env)
        self.workers.append(process)
        return process

    def stop(self) -> None:
        for process in [*self.workers, *([self.api] if self.api else [])]:
            stop(process)


@pytest.fixture
def stack(env, tmp_path) -> Iterator[Stack]:
    running = Stack(env, tmp_path / "logs")
    yield running
    running.stop()
    if os.environ.get("CI"):
        for log in sorted((tmp_path / "logs").glob("*.log")):
            tail = log.read_text(errors="replace")[-3000:]
            if "Traceback" in tail:
                print(f"--- {log.name} ---\n{tail}")
    if not os.environ.get("KEEP_LOGS"):
        shutil.rmtree(tmp_path / "logs", ignore_errors=True)


@pytest.fixture
def staff_api(stack) -> Iterator[httpx.Client]:
    """An HTTP client on a running API, with a signed-in header set per account of tests.staff."""
    from tests.staff import ACCOUNTS, create_staff, sign_in

    create_staff()
    with httpx.Client(base_url=stack.start_api(), timeout=30) as client:
        client.staff = {name: sign_in(client, name) for name in ACCOUNTS}
        yield client


def at_once(call, times: int = 2, timeout: float = 120) -> list:
    """Run `call` in `times` threads at the same moment; their results."""
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results
