"""Engines and sessions. SQLite is tuned for several processes writing at once."""

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, exc, make_url
from sqlmodel import Session


@lru_cache
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _tune_sqlite(engine)
        if database and database != ":memory:":
            _checkpoint_in_background(database)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping, but only for a connection that sat in the pool a while: a ping on every
    checkout was one round trip in each of intake's dozen. A connection used a moment ago that
    then fails is a 503 for that one request, and the pool drops every connection it holds."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as error:  # the pool discards it and checks out another
            raise exc.DisconnectionError(str(error)) from error


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (the documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
        # Checkpoints are the background thread's (below); a commit checkpoints only past this many
        # pages, when no thread in any process has for a while.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    writers = _writer_lock(engine.url.database or "")

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Threads of one process queue here for the write lock and are handed it the moment it is
        # free. Left to SQLite they would poll for it, sleeping up to 100 ms between tries, which
        # made ten concurrent intake requests wait seconds at p99. Bounded, so a lock somehow never
        # released costs a wait, never a hang; other processes still meet SQLite's busy timeout.
        conn.info["writer_lock"] = writers.acquire(timeout=WRITER_LOCK_WAIT_SECONDS)
        try:
            # IMMEDIATE takes the write lock up front: a deferred transaction that later writes can
            # fail at once with "database is locked" when another process committed in between.
            begin_immediate(conn.connection.dbapi_connection)
        except BaseException:
            _release(conn)
            raise

    def _release(conn, *_):
        if conn.info.pop("writer_lock", False):
            writers.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)


WRITER_LOCK_WAIT_SECONDS = 30
BUSY_SECONDS = 60
BUSY_PAUSES = (0.0005, 0.001, 0.002, 0.004)  # then every 4 ms


def begin_immediate(dbapi_connection) -> None:
    """BEGIN IMMEDIATE, trying again every few milliseconds while another process holds the write lock.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... up to 100 ms between tries, and a process that
    wakes to find the lock taken again (two dispatch workers and a delivery worker write too) sleeps
    on. Measured over 30 s of 50 appeals/s with the whole system on SQLite, the API's wait for the
    lock: p90 66-86 ms, p99 420-517 ms, worst 561-737 ms; trying every 4 ms at most: p90 49 ms, p99
    176 ms, worst 273 ms (HTTP p99 432-543 ms, then 189 ms). Only this statement waits here: the
    statements inside the transaction already hold the lock, and keep SQLite's busy timeout."""
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + BUSY_SECONDS
        tries = 0
        while True:
            try:
                dbapi_connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                busy = "locked" in str(error) or "busy" in str(error)
                if not busy or time.monotonic() > deadline:
                    raise exc.OperationalError("BEGIN IMMEDIATE", None, error) from error
            time.sleep(BUSY_PAUSES[min(tries, len(BUSY_PAUSES) - 1)])
            tries += 1
    finally:
        dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")


WAL_AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_SECONDS = 0.2
_checkpointers: set[str] = set()
_checkpointers_lock = threading.Lock()


def _checkpoint_in_background(database: str) -> None:
    """Copy the write-ahead log into the database file from a thread of its own, a few times a
    second. SQLite otherwise checkpoints inside the commit that takes the log past 1,000 pages
    (about every 65 appeals at intake), with an fsync, while that commit still holds the write
    lock every other writer queues on. In 3,000 intakes in a loop those commits were the slowest
    (p99 14 ms, the worst 183 ms; with this thread the worst was 19 ms). A passive checkpoint takes
    no write lock, so writers carry on while it runs."""
    path = str(Path(database).resolve())
    with _checkpointers_lock:
        if path in _checkpointers:
            return
        _checkpointers.add(path)

    def run() -> None:
        while True:
            time.sleep(CHECKPOINT_INTERVAL_SECONDS)
            try:  # a connection each time: the file may have been replaced (tests reset it)
                connection = sqlite3.connect(f"{Path(path).as_uri()}?mode=rw", uri=True, timeout=0,
                                             isolation_level=None)
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                finally:
                    connection.close()
            except sqlite3.Error:  # busy, or the file went away: next time
                pass

    threading.Thread(target=run, name=f"checkpoint {Path(path).name}", daemon=True).start()
_writer_locks: dict[str, threading.Lock] = {}


def _writer_lock(database: str) -> threading.Lock:
    """One lock per database file per process, shared by every engine on it."""
    return _writer_locks.setdefault(str(Path(database).resolve()) if database else ":memory:", threading.Lock())


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(engine_for(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# Every table registered before any session flushes, so foreign keys always resolve.
from appealflow.models.storage import tables  # noqa: E402,F401
