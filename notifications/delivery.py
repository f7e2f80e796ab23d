"""Sending one outbox row through Apprise."""

import hashlib
import logging
import math
import ssl
import threading
import time
import types
from collections import Counter
from urllib.parse import quote

import apprise
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from appealflow.models.telling.outbox import channel_of
from appealflow.notifications.mail import Relay, ascii_address
from appealflow.notifications.messages import Rendered, without_images
from appealflow.settings import Settings

log = logging.getLogger(__name__)


class _LazySSLContext:
    """An SSL context built on first use. Apprise builds one for every e-mail, even over plain SMTP
    where it is never used; loading the CA bundle costs ~17 ms holding the GIL, which capped a
    worker near 45 messages/s however many threads it sends from."""

    def __init__(self):
        self.__dict__["_context"] = None

    def _real(self) -> ssl.SSLContext:
        if self.__dict__["_context"] is None:
            self.__dict__["_context"] = ssl.create_default_context()
        return self.__dict__["_context"]

    def __getattr__(self, name):
        return getattr(self._real(), name)

    def __setattr__(self, name, value):
        setattr(self._real(), name, value)


def _patch_apprise_smtp_ssl() -> bool:
    """Only Apprise's SMTP module sees the lazy context; every other user of ssl is untouched.
    Verified on apprise 2.0 (`apprise.plugins.email.smtp` imports `ssl` as a module); another
    layout leaves Apprise's stock behaviour, slower but correct, rather than failing on import."""
    try:
        from apprise.plugins.email import smtp as apprise_smtp
    except ImportError:
        apprise_smtp = None  # type: ignore[assignment]
    if apprise_smtp is None or getattr(apprise_smtp, "ssl", None) is not ssl:
        log.info("apprise %s: SMTP module not as expected; not deferring its SSL context",
                 getattr(apprise, "__version__", "?"))
        return False
    apprise_smtp.ssl = types.SimpleNamespace(  # type: ignore[assignment]
        **{name: getattr(ssl, name) for name in dir(ssl) if not name.startswith("__")}
        | {"create_default_context": _LazySSLContext},
    )
    return True


SMTP_SSL_DEFERRED = _patch_apprise_smtp_ssl()


class NoRoute(Exception):
    """The target's channel is not configured (no SMTP server, no SMS gateway)."""


def apprise_url(target: str, settings: Settings) -> str:
    """An Apprise URL for a target: `mailto:ADDRESS` and `sms:NUMBER` go through the configured
    gateways, so no server or password is stored in the outbox; anything else is an Apprise URL."""
    kind, _, address = target.partition(":")
    if kind == "mailto" and not address.startswith("//"):
        if not settings.smtp_url:
            raise NoRoute("no SMTP server configured (APPEALFLOW_SMTP_URL)")
        joiner = "&" if "?" in settings.smtp_url else "?"
        return _with_timeouts(f"{settings.smtp_url}{joiner}to={quote(ascii_address(address))}", settings)
    if kind == "sms" and not address.startswith("//"):
        if not settings.sms_url:
            raise NoRoute("no SMS gateway configured (APPEALFLOW_SMS_URL)")
        return _with_timeouts(settings.sms_url.format(phone=quote(address)), settings)
    return _with_timeouts(target, settings)


def _with_timeouts(url: str, settings: Settings) -> str:
    """Apprise's `cto` (connect) and `rto` (read) URL options bound every send; its e-mail plugin
    passes `cto` to smtplib as the socket timeout, which covers the greeting a hung server never
    sends. A URL that names its own timeouts keeps them."""
    if "://" not in url or "cto=" in url or "rto=" in url:
        return url
    timeout = f"{settings.notify_timeout_seconds:g}"
    return f"{url}{'&' if '?' in url else '?'}cto={timeout}&rto={timeout}"


_shared_asset: apprise.AppriseAsset | None = None


def _asset() -> apprise.AppriseAsset:
    """One Apprise asset per process, built once rather than per message. Its `service_timeout` is off,
    so Apprise sends on the calling thread instead of handing every message to its own process-wide
    pool (min(32, CPUs + 4) threads: 6 on two cores, which capped a pump's concurrency); each step of
    a send is still bounded by the `cto`/`rto` socket timeouts (`_with_timeouts`)."""
    global _shared_asset
    if _shared_asset is None:
        _shared_asset = apprise.AppriseAsset(service_timeout=0)
    return _shared_asset


_relays: dict[str, Relay] = {}
_relays_lock = threading.Lock()


def relay(settings: Settings) -> Relay:
    """The configured SMTP relay, one per process (and per URL, which tests change), so its open
    connections serve every message."""
    if not settings.smtp_url:
        raise NoRoute("no SMTP server configured (APPEALFLOW_SMTP_URL)")
    url = apprise_url("mailto:relay@appealflow.invalid", settings)  # the settings Apprise would use
    with _relays_lock:
        if url not in _relays:
            _relays[url] = Relay(url)
        return _relays[url]


def send(target: str, message: Rendered, settings: Settings, *, key: str | None = None) -> None:
    """Deliver or raise; Apprise reports failure as a false result, which we turn into an error.

    E-mail gets our HTML (every fact escaped, so what a citizen typed never reaches a mailbox as live
    HTML) beside our plain text; SMS, bots and webhooks get the plain text. E-mail to an address
    (`mailto:ADDRESS`) goes to the configured relay over a kept connection (notifications/mail.py);
    every other target through Apprise."""
    kind, _, address = target.partition(":")
    if kind == "mailto" and not address.startswith("//"):
        mail_relay = relay(settings)
        if mail_relay.kept:
            mail_relay.send(address, message.subject, message.text, message.html, key=key, images=message.images)
            return
    notifier = apprise.Apprise(asset=_asset())
    if not notifier.add(apprise_url(target, settings)):
        raise NoRoute(f"not a usable notification URL: {target.split(':', 1)[0]}:...")
    if channel_of(target) == "email":
        sent = notifier.notify(title=message.subject, body=without_images(message),
                               body_format=apprise.NotifyFormat.HTML)
    else:
        sent = notifier.notify(title=message.subject, body=message.text, body_format=apprise.NotifyFormat.TEXT)
    if not sent:
        raise ConnectionError(f"delivery through {channel_of(target)} ({target.split(':', 1)[0]}) failed")


class ChannelLimits:
    """Per-channel send rates, counted in Redis so every delivery worker shares one count (a moving
    window, by the `limits` library); each bot or webhook URL has a count of its own. With Redis
    gone, each process counts alone rather than stopping delivery."""

    def __init__(self, settings: Settings):
        self._items: dict[str, list[RateLimitItem]] = {
            "email": parse_many(settings.delivery_rate_limit_email),
            "sms": parse_many(settings.delivery_rate_limit_sms),
            "bot": parse_many(settings.delivery_rate_limit_bot),
            "webhook": parse_many(settings.delivery_rate_limit_webhook),
        }
        self._shared = self._local = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()
        try:
            from redis import Redis

            from appealflow.redis_url import redis_url

            connection = Redis.from_url(redis_url(), socket_connect_timeout=1, socket_timeout=1)
            storage = RedisStorage("redis://", connection_pool=connection.connection_pool,
                                   key_prefix="appealflow:send")
            self._shared = MovingWindowRateLimiter(storage)
        except Exception as error:
            log.warning("delivery rate limits counted per process, Redis unavailable: %s", error)

    @staticmethod
    def key_of(target: str) -> tuple[str, str]:
        """The count a message to `target` is counted in: its channel's, or its own bot or webhook URL's."""
        channel = channel_of(target)
        key = channel if channel in ("email", "sms") else hashlib.sha256(target.encode()).hexdigest()[:16]
        return channel, key

    def wait(self, target: str) -> float:
        """0 if a message to `target` may go now (and count it); else seconds until it may."""
        _, wait = self.take(target, 1)
        return wait

    def take(self, target: str, wanted: int) -> tuple[int, float]:
        """Count up to `wanted` messages to `target`'s channel at once (one Redis call when the window has
        room): how many may go now, and if none may, the seconds until one may. Never more than the
        limit: counted first, sent after, and a counted message that is not sent only wastes room."""
        channel, key = self.key_of(target)
        granted = wanted
        for item in self._items.get(channel, self._items["webhook"]):
            try:
                granted, limiter = self._take(self._shared, item, channel, key, granted), self._shared
            except Exception as error:  # Redis went away mid-run
                log.warning("delivery rate limit counted locally: %s", error)
                with self._lock:
                    granted, limiter = self._take(self._local, item, channel, key, granted), self._local
            if not granted:
                reset_at, _ = limiter.get_window_stats(item, channel, key)
                return 0, max(0.05, math.ceil((reset_at - time.time()) * 100) / 100)
        return granted, 0.0

    @staticmethod
    def _take(limiter: MovingWindowRateLimiter, item: RateLimitItem, channel: str, key: str, wanted: int) -> int:
        if limiter.hit(item, channel, key, cost=wanted):
            return wanted
        # Not that many: as many as the window has room for (another worker may take them first).
        room = min(wanted, limiter.get_window_stats(item, channel, key)[1])
        while room > 0:
            if limiter.hit(item, channel, key, cost=room):
                return room
            room = min(room - 1, limiter.get_window_stats(item, channel, key)[1])
        return 0


class Allowance:
    """The rate-limit room one batch draws on: taken from the shared counts (`ChannelLimits.take`) a few
    messages at a time, just before they are sent, rather than one Redis round trip per message. Once
    a channel's count says wait, the rest of the batch for it waits too, without asking again."""

    def __init__(self, limits: ChannelLimits, targets: list[str], *, chunk: int):
        self._limits = limits
        self._chunk = max(1, chunk)
        self._wanted = Counter(ChannelLimits.key_of(t) for t in targets)  # still to send, per count
        self._room: Counter = Counter()
        self._until: dict[tuple[str, str], float] = {}  # count -> when it has room again (monotonic)
        self._lock = threading.Lock()

    def wait(self, target: str) -> float:
        """0 if this message may go now (it is counted); else seconds until its channel has room."""
        key = ChannelLimits.key_of(target)
        with self._lock:
            self._wanted[key] -= 1
            if self._room[key] > 0:
                self._room[key] -= 1
                return 0.0
            if key in self._until:
                return max(0.05, self._until[key] - time.monotonic())
            granted, wait = self._limits.take(target, min(self._chunk, self._wanted[key] + 1))
            if not granted:
                self._until[key] = time.monotonic() + wait
                return wait
            self._room[key] += granted - 1
            return 0.0
