"""Which Redis to talk to: REDIS_URL, or the embedded server `appealflow up` started."""

from appealflow.settings import get_settings


class NoRedis(RuntimeError):
    pass


def redis_url() -> str:
    settings = get_settings()
    if settings.redis_url:
        return settings.redis_url
    recorded = settings.data_dir / "redis" / "url"
    if recorded.exists():
        return recorded.read_text().strip()
    raise NoRedis("no Redis: set REDIS_URL, or start the system with `appealflow up`, "
                  "which starts its own")
