"""Dependencies declared once: the database session, the unit of work, the Redis connection."""

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from redis import Redis
from sqlmodel import Session

from appealflow.models.storage.db import engine_for
from appealflow.settings import Settings, get_settings
from appealflow.workers.queues import connect, wake_quietly

log = logging.getLogger(__name__)


# The dependencies below are coroutines: FastAPI runs a plain function (and each half of a plain
# generator) on its thread pool, and those hand-offs, several per request, cost intake more than
# its SQL on a busy machine. None of them waits on I/O except a session closed mid-transaction,
# which is closed on the thread pool.


async def _session() -> AsyncIterator[Session]:
    session = Session(engine_for(get_settings().sqlalchemy_url), expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():  # a rollback: a round trip to the database
            await run_in_threadpool(session.close)
        else:
            session.close()


async def _settings() -> Settings:
    return get_settings()


async def _redis(request: Request) -> Redis:
    return _redis_of(request.app)


def _redis_of(app) -> Redis:
    if getattr(app.state, "redis", None) is None:
        app.state.redis = connect()
    return app.state.redis


WAKE_INTERVAL_SECONDS = 0.02


class Waker:
    """Wakes workers from a thread of its own, after the response has gone.

    A wake-up is a Redis round trip or two (SET NX, and an enqueue when the flag was clear); made
    inside each request it cost intake about a tenth of its time. Here requests that commit while
    one wake-up is under way, or within WAKE_INTERVAL_SECONDS after it, share the next one: under
    load that is one per interval rather than one per appeal, and a first commit after a quiet
    spell is still woken at once. Losing one (the process dies first, Redis is down) loses
    nothing: the workers' reconcilers find the work in the database."""

    def __init__(self, redis: Callable[[], Redis]):
        self._redis = redis
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, kinds: set[str]) -> None:
        with self._lock:
            if kinds <= self._pending and self._thread is not None and self._thread.is_alive():
                return  # already asked for and not yet sent: the coming wake-up covers this commit
            self._pending |= kinds
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="waker", daemon=True)
                self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        while True:  # a daemon thread for the life of the process, asleep unless woken
            self._wanted.wait()
            self._wanted.clear()
            with self._lock:
                kinds, self._pending = self._pending, set()
            for kind in sorted(kinds):
                try:
                    wake_quietly(self._redis(), kind)
                except Exception:  # never let the thread die; the reconcilers cover the gap
                    log.exception("waking %s failed; the reconciler will", kind)
            time.sleep(WAKE_INTERVAL_SECONDS)


def _waker(request: Request) -> Waker:
    state = request.app.state
    if getattr(state, "waker", None) is None:
        with _waker_lock:
            if getattr(state, "waker", None) is None:
                app = request.app
                state.waker = Waker(lambda: _redis_of(app))
    return state.waker


_waker_lock = threading.Lock()


class UnitOfWork:
    """One request's transaction. The domain only adds to the session; the route commits once,
    and only then are the workers woken for what the commit made (the outbox pattern)."""

    def __init__(self, session: Session, waker: Callable[[], Waker]):
        self.session = session
        self._waker = waker
        self._wakes: set[str] = set()

    def wake(self, kind: str) -> None:
        """Wake `kind` workers once this unit commits."""
        self._wakes.add(kind)

    def commit(self) -> None:
        self.session.commit()
        if self._wakes:
            self._waker().wake(self._wakes)
        self._wakes = set()

    def rollback(self) -> None:
        self.session.rollback()
        self._wakes.clear()


SessionDep = Annotated[Session, Depends(_session)]
RedisDep = Annotated[Redis, Depends(_redis)]


async def _unit_of_work(request: Request, session: SessionDep) -> AsyncIterator[UnitOfWork]:
    unit = UnitOfWork(session, lambda: _waker(request))
    try:
        yield unit
    except Exception:
        await run_in_threadpool(unit.rollback)
        raise


UnitOfWorkDep = Annotated[UnitOfWork, Depends(_unit_of_work)]
SettingsDep = Annotated[Settings, Depends(_settings)]
