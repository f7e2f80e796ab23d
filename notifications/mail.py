"""E-mail to the configured relay over kept SMTP connections.

Apprise opens a new SMTP connection for every message (connect, greeting, EHLO, maybe STARTTLS and
login, then QUIT), and keeping an Apprise object does not keep its connection. That handshake was a
third of what a delivery worker spent per e-mail. Here the relay's settings are read by Apprise
itself from `APPEALFLOW_SMTP_URL` (host, port, TLS mode, login, certificate check, sender, extra
headers, `cto`/`rto`), and a sending thread takes an open connection from a small pool, sends, and
puts it back. Every socket operation is bounded by the URL's timeouts; a connection that fails is
closed, never reused. A relay URL asking for what Apprise alone does (cc, bcc, PGP) is sent through
Apprise, message by message, as before.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
import threading
import time
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid
from secrets import token_hex

import apprise
from apprise.plugins.email import NotifyEmail

log = logging.getLogger(__name__)

# A connection idle this long is closed rather than reused: relays drop idle clients after a minute
# or more, and a connection a firewall forgot would only fail after the read timeout.
MAX_IDLE_SECONDS = 30.0


class RelayRefused(Exception):
    """The relay answered, and refused this message (sender, recipient or content)."""


class Relay:
    """One SMTP relay, as Apprise reads it from a `mailto://` URL, with a pool of open connections."""

    def __init__(self, url: str):
        plugin = apprise.Apprise.instantiate(url)
        if not isinstance(plugin, NotifyEmail):
            raise ValueError("not an SMTP relay URL")
        self.host: str = plugin.smtp_host
        self.port: int = plugin.port
        self.secure_mode: str = plugin.secure_mode
        self.user: str | None = plugin.user
        self.password: str | None = plugin.password
        self.connect_timeout = float(plugin.socket_connect_timeout)
        self.read_timeout = float(plugin.socket_read_timeout)
        self.sender: str = plugin.from_addr[1]
        self._from = formataddr((plugin.from_addr[0] or None, plugin.from_addr[1]), charset="utf-8")
        self._headers = [(name, _header(value)) for name, value in
                         ({"X-Application": plugin.app_id} | dict(plugin.headers)).items()]
        self._reply_to = ",".join(formataddr((plugin.names.get(a) or None, a), charset="utf-8")
                                  for a in sorted(plugin.reply_to))
        self._zone = plugin.tzinfo
        # What only Apprise does with a message; such a relay keeps going through Apprise.
        self.kept = not plugin.cc and not plugin.bcc and getattr(plugin, "pgp_mode", "no") in (None, "no")
        self._tls: ssl.SSLContext | None = None
        if self.secure_mode in ("ssl", "starttls"):
            self._tls = ssl.create_default_context()
            if not plugin.verify_certificate:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._lock = threading.Lock()
        self.opened = 0  # connections opened so far (the benchmarks report it)

    def send(self, to_address: str, subject: str, text: str, html: str, *, key: str | None = None,
             images: tuple[tuple[str, bytes], ...] = ()) -> None:
        """Send one message; raise if the relay did not take it (the outbox retries it later). `key`
        names the message for good: every try carries the same Message-ID, so a resend after an
        answer the relay gave too late for us is one message to a mail client, not two."""
        to_address = ascii_address(to_address)
        message = self.compose(to_address, subject, text, html, key=key, images=images)
        connection, reused = self._take()
        try:
            try:
                self._start(connection)
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError):
                # Nothing was handed over yet, so a connection the relay closed meanwhile (idle
                # timeout, a cap on messages per connection) is replaced and the message sent once.
                _close(connection)
                if not reused:
                    raise
                connection, reused = self._open(), False
                self._start(connection)
            self._transfer(connection, to_address, message)
        except RelayRefused:
            self._give(connection)  # the relay answered: the connection is fine
            raise
        except BaseException:
            _close(connection)
            raise
        self._give(connection)

    def compose(self, to_address: str, subject: str, text: str, html: str, *, key: str | None = None,
                images: tuple[tuple[str, bytes], ...] = ()) -> str:
        """multipart/alternative: our plain text and our HTML, each UTF-8 in base64, headers as Apprise
        writes them (From, To, Subject, Message-ID, Date, X-Application and the URL's own). With
        `images`, the HTML goes in a multipart/related beside them, each named by its Content-ID, as
        mail clients show inline pictures (a `data:` image many of them do not)."""
        boundary = "===============" + token_hex(12) + "=="
        head = [
            ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
            ("MIME-Version", "1.0"),
            *self._headers,
            ("Subject", _header(" ".join(subject.split()))),
            ("From", self._from),
            ("To", formataddr((None, to_address), charset="utf-8")),
            ("Message-ID", f"<{key}@{self.host}>" if key else make_msgid(domain=self.host)),
            ("Date", format_datetime(datetime.now(tz=self._zone))),
        ]
        if self._reply_to:
            head.append(("Reply-To", self._reply_to))
        lines = [f"{name}: {value}" for name, value in head]
        def part(subtype: str, body: str) -> list[str]:
            return [f'Content-Type: text/{subtype}; charset="utf-8"', "MIME-Version: 1.0",
                    "Content-Transfer-Encoding: base64", "",
                    base64.encodebytes(body.encode("utf-8")).decode("ascii").rstrip("\n")]

        lines += ["", f"--{boundary}", *part("plain", text), "", f"--{boundary}"]
        if images:
            related = "===============" + token_hex(12) + "=="
            lines += [f'Content-Type: multipart/related; boundary="{related}"; type="text/html"', "MIME-Version: 1.0",
                      "", f"--{related}", *part("html", html)]
            for cid, png in images:
                lines += ["", f"--{related}", "Content-Type: image/png", "MIME-Version: 1.0",
                          "Content-Transfer-Encoding: base64", f"Content-ID: <{cid}>",
                          f'Content-Disposition: inline; filename="{cid.split("@")[0]}.png"', "",
                          base64.encodebytes(png).decode("ascii").rstrip("\n")]
            lines += ["", f"--{related}--"]
        else:
            lines += part("html", html)
        lines += ["", f"--{boundary}--", ""]
        return "\n".join(lines)  # smtplib sends every line end as CRLF

    def _take(self) -> tuple[smtplib.SMTP, bool]:
        now = time.monotonic()
        with self._lock:
            while self._idle:
                connection, since = self._idle.pop()
                if now - since < MAX_IDLE_SECONDS:
                    return connection, True
                connection.close()  # no QUIT: the relay may be long gone, and we hold the lock
        return self._open(), False

    def _give(self, connection: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append((connection, time.monotonic()))

    def _open(self) -> smtplib.SMTP:
        """Connect, secure and sign in as Apprise does for each message (AppriseSMTPController)."""
        if self.secure_mode == "ssl":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, None, timeout=self.connect_timeout,
                                                       context=self._tls)
        else:
            connection = smtplib.SMTP(self.host, self.port, None, timeout=self.connect_timeout)
        try:
            if connection.sock is not None:
                connection.sock.settimeout(self.read_timeout)
            if self.secure_mode == "starttls":
                connection.starttls(context=self._tls)
            if self.user and self.password:
                connection.login(self.user, self.password)
        except BaseException:
            _close(connection)
            raise
        self.opened += 1
        return connection

    def _start(self, connection: smtplib.SMTP) -> None:
        """The envelope's sender: the first command on a kept connection, so a closed one fails here."""
        connection.ehlo_or_helo_if_needed()
        code, answer = connection.mail(self.sender)
        if code == 421:  # closing: the connection is gone, the message not yet handed over
            raise smtplib.SMTPServerDisconnected(f"{code} {answer!r}")
        if code != 250:
            _reset(connection)
            raise RelayRefused(f"sender refused: {code} {answer!r}")

    @staticmethod
    def _transfer(connection: smtplib.SMTP, to_address: str, message: str) -> None:
        code, answer = connection.rcpt(to_address)
        if code not in (250, 251):
            _reset(connection)
            raise RelayRefused(f"recipient refused: {code} {answer!r}")
        code, answer = connection.data(message)
        if code != 250:
            _reset(connection)
            raise RelayRefused(f"message refused: {code} {answer!r}")


def _header(value: str) -> str:
    """A header value as it travels: ASCII as it is, anything else as UTF-8 encoded words."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _reset(connection: smtplib.SMTP) -> None:
    """Clear a refused transaction, so the connection can carry the next message; a connection that
    cannot is closed, and the next message to take it opens a new one."""
    try:
        connection.rset()
    except (smtplib.SMTPException, OSError):
        connection.close()


def _close(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


def ascii_address(address: str) -> str:
    """The address as SMTP without SMTPUTF8 takes it: an internationalised domain in its IDNA form
    (intake refuses a non-ASCII local part)."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    return f"{local}@{domain.encode('idna').decode('ascii')}"
