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
            "short_link": parse_many(settings.rate_limit_short_link),
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


# Follow-up by code and the phone's last four digits: ten thousand combinations are few, but a hard
# limit per code would let anyone who knows a code lock its requester out. So wrong tries count per
# code, and an address that has guessed wrong on a code waits before its next try there, longer the
# more wrong tries the code has had (from anyone): 10 s after the third, doubling, at most an hour.
# An address that has not guessed wrong on the code (the real caller, on their own phone) never
# waits for it; every address is still held to `rate_limit_tracking_phone` over all codes.
GUESS_MEMORY_SECONDS = 86400
GUESS_FREE = 3
GUESS_FIRST_WAIT = 10
GUESS_MAX_WAIT = 3600


def _redis(request: Request) -> Redis | None:
    state = request.app.state
    if not get_settings().rate_limits_enabled:
        return None
    if getattr(state, "guess_redis", None) is None:
        state.guess_redis = Redis.from_url(redis_url(), socket_connect_timeout=1, socket_timeout=1)
    return state.guess_redis


def guess_wait(wrong_on_code: int) -> int:
    """Seconds an address that guessed wrong waits, once the code has had this many wrong tries."""
    if wrong_on_code < GUESS_FREE:
        return 0
    return min(GUESS_FIRST_WAIT * 2 ** (wrong_on_code - GUESS_FREE), GUESS_MAX_WAIT)


def _number(value: object) -> float:
    """A number Redis handed back (bytes), or 0 for none."""
    if isinstance(value, bytes):
        return float(value.decode("ascii"))
    return float(value) if isinstance(value, int | float | str) else 0.0


def check_phone_guess(request: Request, code: str) -> None:
    """429 with Retry-After if this address guessed wrong on `code` too recently."""
    try:
        redis = _redis(request)
        if redis is None:
            return
        last = redis.get(f"appealflow:guess:{code}:{client_ip(request)}")
        if last is None:
            return
        wrong = int(_number(redis.get(f"appealflow:guess:{code}")))
        wait = math.ceil(_number(last) + guess_wait(wrong) - time.time())
        if wait > 0:
            raise HTTPException(429, f"请 {wait} 秒后再试 / wrong digits for this code: retry in {wait} s",
                                headers={"Retry-After": str(wait)})
    except HTTPException:
        raise
    except Exception as error:  # as above: an outage lifts the limit
        log.warning("phone look-up limit not applied, Redis unavailable: %s", error)


def phone_guess_wrong(request: Request, code: str) -> None:
    """Count a wrong guess on `code` by this address."""
    try:
        redis = _redis(request)
        if redis is None:
            return
        with redis.pipeline() as pipe:
            pipe.incr(f"appealflow:guess:{code}")
            pipe.expire(f"appealflow:guess:{code}", GUESS_MEMORY_SECONDS)
            pipe.set(f"appealflow:guess:{code}:{client_ip(request)}", time.time(), ex=GUESS_MEMORY_SECONDS)
            pipe.execute()
    except Exception as error:
        log.warning("phone look-up guess not counted, Redis unavailable: %s", error)


def limit(kind: str):
    """A dependency limiting `kind` per client IP."""

    def dependency(request: Request) -> None:
        check(request, kind, client_ip(request))

    return dependency
