"""Liveness and readiness, and 503 instead of 500 when a backing service is unreachable.

`/health` is liveness: the process answers, no I/O, so an orchestrator never restarts a healthy API
because the database blinked. `/health/ready` is readiness: it checks the database and Redis and
names what failed. A request that fails because the database (or Redis) is unreachable answers
503 with Retry-After and a JSON body, in both languages, never a traceback.
"""

from __future__ import annotations

import logging
import time
from functools import lru_cache

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from appealflow.models.storage.db import engine_for
from appealflow.redis_url import redis_url
from appealflow.settings import get_settings

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
CHECK_TIMEOUT_SECONDS = 2

router = APIRouter(tags=["ops"])


@router.get("/health")
def health() -> dict:
    """Liveness: the process is up. Touches nothing else."""
    return {"status": "ok"}


@lru_cache
def _redis(url: str) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS)


def _check_database() -> None:
    with engine_for(get_settings().sqlalchemy_url).connect() as connection:
        connection.execute(text("SELECT 1"))


def _check_redis() -> None:
    _redis(redis_url()).ping()


@router.get("/health/ready", responses={503: {"description": "a dependency is unreachable; see `checks`"}})
def ready() -> JSONResponse:
    """Readiness: the database and Redis both answer. 503 names the one that did not."""
    checks, failed = {}, []
    for name, check in (("database", _check_database), ("redis", _check_redis)):
        started = time.perf_counter()
        try:
            check()
        except Exception as error:
            checks[name] = {"ok": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
            failed.append(name)
        else:
            checks[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if failed:
        return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, content={
            "status": "unavailable", "failed": failed, "checks": checks})
    return JSONResponse({"status": "ready", "checks": checks})


def unavailable(service: str) -> JSONResponse:
    return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, content={
        "detail": f"服务暂时不可用，请稍后重试 / The service is temporarily unavailable ({service}); "
                  f"please retry in {RETRY_AFTER_SECONDS} seconds.",
        "unavailable": service, "retry_after": RETRY_AFTER_SECONDS})


# What an outage raises; pages answer them with a page of their own (api/pages/__init__.py).
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError, RedisConnectionError, RedisTimeoutError)


def install(app: FastAPI) -> None:
    app.include_router(router)

    # OperationalError is the DBAPI's class for "the server went away / refused / timed out"
    # (and SQLite's "database is locked"); InterfaceError is a connection closed under us.
    async def _database(request: Request, error: Exception):
        cause = str(getattr(error, "orig", None) or error)
        log.warning("database unreachable on %s %s: %s", request.method, request.url.path,
                    cause.splitlines()[0] if cause else type(error).__name__)
        return unavailable("database")

    app.add_exception_handler(OperationalError, _database)
    app.add_exception_handler(InterfaceError, _database)

    @app.exception_handler(PoolTimeoutError)
    async def _pool(request: Request, error: PoolTimeoutError):
        log.warning("no database connection free on %s %s", request.method, request.url.path)
        return unavailable("database")

    @app.exception_handler(RedisConnectionError)
    async def _redis_down(request: Request, error: RedisConnectionError):
        log.warning("Redis unreachable on %s %s: %s", request.method, request.url.path, error)
        return unavailable("redis")

    @app.exception_handler(RedisTimeoutError)
    async def _redis_slow(request: Request, error: RedisTimeoutError):
        log.warning("Redis timed out on %s %s: %s", request.method, request.url.path, error)
        return unavailable("redis")
