"""Rate limits on what anyone may call without signing in: intake, tracking look-ups and sign-in.
Counted in Redis (moving window, by the `limits` library) so every API process shares one count,
keyed per client IP (and per username for sign-in). A limit that trips is 429 with Retry-After."""

import logging
import math
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis

from appealflow.redis_url import redis_url
from appealflow.settings import get_settings

log = logging.getLogger(__name__)


@dataclass
class _Limiter:
    limiter: MovingWindowRateLimiter
    limits: dict[str, list[RateLimitItem]]


def _limiter(request: Request) -> _Limiter | None:
    state = request.app.state
    if getattr(state, "rate_limiter", None) is None:
        settings = get_settings()
        if not settings.rate_limits_enabled:
            return None
        # Short timeouts: a Redis outage must not hold up intake, which is safe in the database.
        connection = Redis.from_url(redis_url(), socket_connect_timeout=1, socket_timeout=1)
        storage = RedisStorage("redis://", connection_pool=connection.connection_pool, key_prefix="appealflow:limit")
        state.rate_limiter = _Limiter(MovingWindowRateLimiter(storage), {
            "intake": parse_many(settings.rate_limit_intake),
            "tracking": parse_many(settings.rate_limit_tracking),
            "policy_search": parse_many(settings.rate_limit_policy_search),
            "sign_in": parse_many(settings.rate_limit_sign_in),
            "sign_in_user": parse_many(settings.rate_limit_sign_in_user),
            "tracking_phone": parse_many(settings.rate_limit_tracking_phone),
        })
    return state.rate_limiter


def client_ip(request: Request) -> str:
    # Behind a proxy, run uvicorn with --proxy-headers and --forwarded-allow-ips so this is the
    # citizen's address, not the proxy's.
    return request.client.host if request.client else "unknown"


def check(request: Request, kind: str, key: str) -> None:
    """Count one call of `kind` by `key`; 429 if any of its limits is spent."""
    try:
        found = _limiter(request)
        if found is None:
            return
        for item in found.limits[kind]:
            if not found.limiter.hit(item, kind, key):
                reset_at, _ = found.limiter.get_window_stats(item, kind, key)
                wait = max(1, math.ceil(reset_at - time.time()))
                raise HTTPException(429, f"请求过于频繁，请 {wait} 秒后再试 / too many requests: at most {item}; "
                                         f"retry in {wait} s", headers={"Retry-After": str(wait)})
    except HTTPException:
        raise
    except Exception as error:  # a Redis outage lifts the limits rather than refusing citizens
        log.warning("rate limits not applied, Redis unavailable: %s", error)


def limit(kind: str):
    """A dependency limiting `kind` per client IP."""

    def dependency(request: Request) -> None:
        check(request, kind, client_ip(request))

    return dependency
