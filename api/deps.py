"""Dependencies declared once: the database session and the Redis connection."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from redis import Redis
from sqlmodel import Session

from appealflow.models.db import engine_for
from appealflow.settings import Settings, get_settings
from appealflow.workers.queues import connect


def _session() -> Iterator[Session]:
    with Session(engine_for(get_settings().sqlalchemy_url), expire_on_commit=False) as session:
        yield session


def _redis(request: Request) -> Redis:
    if getattr(request.app.state, "redis", None) is None:
        request.app.state.redis = connect()
    return request.app.state.redis


SessionDep = Annotated[Session, Depends(_session)]
RedisDep = Annotated[Redis, Depends(_redis)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
