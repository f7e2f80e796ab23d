"""Dependencies declared once: the database session, the unit of work, the Redis connection."""

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from sqlmodel import Session

from appealflow.models.db import engine_for
from appealflow.settings import Settings, get_settings
from appealflow.workers.queues import connect, wake_quietly


def _session() -> Iterator[Session]:
    with Session(engine_for(get_settings().sqlalchemy_url), expire_on_commit=False) as session:
        yield session


def _redis(request: Request) -> Redis:
    if getattr(request.app.state, "redis", None) is None:
        request.app.state.redis = connect()
    return request.app.state.redis


class UnitOfWork:
    """One request's transaction. The domain only adds to the session; the route commits once,
    and only then are the workers woken for what the commit made (the outbox pattern)."""

    def __init__(self, session: Session, redis: Callable[[], Redis]):
        self.session = session
        self._redis = redis
        self._wakes: set[str] = set()

    def wake(self, kind: str) -> None:
        """Wake `kind` workers once this unit commits."""
        self._wakes.add(kind)

    def commit(self) -> None:
        self.session.commit()
        for kind in sorted(self._wakes):  # a lost wake-up is found by the reconcilers
            wake_quietly(self._redis(), kind)
        self._wakes.clear()

    def rollback(self) -> None:
        self.session.rollback()
        self._wakes.clear()


SessionDep = Annotated[Session, Depends(_session)]
RedisDep = Annotated[Redis, Depends(_redis)]


def _unit_of_work(request: Request, session: SessionDep) -> Iterator[UnitOfWork]:
    unit = UnitOfWork(session, lambda: _redis(request))
    try:
        yield unit
    except Exception:
        unit.rollback()
        raise


UnitOfWorkDep = Annotated[UnitOfWork, Depends(_unit_of_work)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
