"""SQLite's write lock across processes: a writer waiting for another's transaction begins within
milliseconds of its commit, not after SQLite's busy handler has slept up to 100 ms at a time."""

import sqlite3
import threading
import time

import pytest
from sqlalchemy import exc

from appealflow.models.storage.db import BUSY_SECONDS, begin_immediate


def connect(path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    return connection


def test_a_waiting_writer_begins_moments_after_the_holder_commits(tmp_path):
    holder, waiter = connect(tmp_path / "db"), connect(tmp_path / "db")
    holder.execute("CREATE TABLE t (x)")
    gaps = []
    for hold in (0.05, 0.13, 0.21):  # between SQLite's own sleeps of 100 ms
        holder.execute("BEGIN IMMEDIATE")
        committed: list[float] = []

        def commit_later(seconds=hold, committed=committed):
            time.sleep(seconds)
            holder.execute("INSERT INTO t VALUES (1)")
            holder.execute("COMMIT")
            committed.append(time.monotonic())

        thread = threading.Thread(target=commit_later)
        thread.start()
        begin_immediate(waiter)
        began = time.monotonic()
        thread.join()
        waiter.execute("INSERT INTO t VALUES (2)")
        waiter.execute("COMMIT")
        gaps.append(began - committed[0])
    assert max(gaps) < 0.03, gaps
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_SECONDS * 1000
    assert holder.execute("SELECT count(*) FROM t").fetchone()[0] == 6


def test_an_error_other_than_busy_is_raised_at_once_as_sqlalchemys(tmp_path):
    connection = connect(tmp_path / "db")
    connection.execute("BEGIN")  # a transaction already open: BEGIN fails, and no waiting helps
    started = time.monotonic()
    with pytest.raises(exc.OperationalError):
        begin_immediate(connection)
    assert time.monotonic() - started < 1
