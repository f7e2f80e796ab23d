"""Sending one outbox row through Apprise."""

import ssl
import types
from urllib.parse import quote

import apprise
from apprise.plugins.email import smtp as apprise_smtp

from appealflow.settings import Settings


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


# Only Apprise's SMTP module sees the lazy context; every other user of ssl is untouched.
apprise_smtp.ssl = types.SimpleNamespace(
    **{name: getattr(ssl, name) for name in dir(ssl) if not name.startswith("__")}
    | {"create_default_context": _LazySSLContext},
)


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
        return f"{settings.smtp_url}{joiner}to={quote(address)}"
    if kind == "sms" and not address.startswith("//"):
        if not settings.sms_url:
            raise NoRoute("no SMS gateway configured (APPEALFLOW_SMS_URL)")
        return settings.sms_url.format(phone=quote(address))
    return target


def send(target: str, subject: str, body: str, settings: Settings) -> None:
    """Deliver or raise; Apprise reports failure as a false result, which we turn into an error."""
    notifier = apprise.Apprise()
    if not notifier.add(apprise_url(target, settings)):
        raise NoRoute(f"not a usable notification URL: {target.split(':', 1)[0]}:...")
    if not notifier.notify(title=subject, body=body):
        raise ConnectionError(f"delivery to {target.split(':', 1)[0]} target failed")
