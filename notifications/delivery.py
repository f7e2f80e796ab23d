"""Sending one outbox row through Apprise."""

import html
import logging
import ssl
import types
from urllib.parse import quote

import apprise

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
        apprise_smtp = None
    if apprise_smtp is None or getattr(apprise_smtp, "ssl", None) is not ssl:
        log.info("apprise %s: SMTP module not as expected; not deferring its SSL context",
                 getattr(apprise, "__version__", "?"))
        return False
    apprise_smtp.ssl = types.SimpleNamespace(
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
        return _with_timeouts(f"{settings.smtp_url}{joiner}to={quote(address)}", settings)
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


def as_html(text: str) -> str:
    """Our bodies are plain text holding what citizens typed. Given to Apprise without a format,
    that text became an e-mail's HTML part as it stood, so a citizen's <a href>/<script> reached
    mailboxes live. Escaped here and declared HTML, the HTML part shows it as text, and Apprise
    derives the plain-text part from it (entities decoded back). The subject is a header, not HTML."""
    return html.escape(text).replace("\n", "<br>")


def send(target: str, subject: str, body: str, settings: Settings) -> None:
    """Deliver or raise; Apprise reports failure as a false result, which we turn into an error."""
    notifier = apprise.Apprise()
    if not notifier.add(apprise_url(target, settings)):
        raise NoRoute(f"not a usable notification URL: {target.split(':', 1)[0]}:...")
    if not notifier.notify(title=subject, body=as_html(body), body_format=apprise.NotifyFormat.HTML):
        raise ConnectionError(f"delivery to {target.split(':', 1)[0]} target failed")
