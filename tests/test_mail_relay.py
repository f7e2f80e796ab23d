"""E-mail through the relay on kept connections (notifications/mail.py): one connection carries many
messages, a connection the relay dropped is replaced without losing or doubling a message, a relay
that never answers costs at most the timeout. Real SMTP servers on 127.0.0.1."""

import socket
import time

import pytest
from aiosmtpd.controller import Controller

from appealflow.notifications.delivery import relay, send
from appealflow.notifications.messages import Rendered
from appealflow.settings import get_settings
from tests.requester_receivers import Mailbox


def _settings(monkeypatch, url: str, timeout: str = "10"):
    monkeypatch.setenv("APPEALFLOW_SMTP_URL", url)
    monkeypatch.setenv("APPEALFLOW_NOTIFY_TIMEOUT_SECONDS", timeout)
    get_settings.cache_clear()
    return get_settings()


def _letter(n: int) -> Rendered:
    return Rendered(f"您的诉求 {n} 已受理 / received", f"第 {n} 封\nhttp://t.test/appeals/{n}?token=x",
                    f"<p>第 {n} 封 &lt;b&gt;</p>")


def test_one_kept_connection_carries_every_message_whole(monkeypatch):
    with Mailbox() as mailbox:
        settings = _settings(monkeypatch, mailbox.apprise_url + "&name=12345")
        for n in range(5):
            send(f"mailto:r{n}@example.test", _letter(n), settings)
        assert relay(settings).opened == 1
        letters = sorted(mailbox.letters, key=lambda letter: letter["to"])
    assert [letter["to"] for letter in letters] == [f"r{n}@example.test" for n in range(5)]
    assert letters[3]["subject"] == "您的诉求 3 已受理 / received"
    assert letters[3]["text"].strip() == "第 3 封\nhttp://t.test/appeals/3?token=x"  # our text, not one from HTML
    assert letters[3]["html"].strip() == "<p>第 3 封 &lt;b&gt;</p>"


def test_a_connection_the_relay_dropped_is_replaced_and_the_message_sent_once(monkeypatch):
    with Mailbox() as mailbox:
        settings = _settings(monkeypatch, mailbox.apprise_url)
        send("mailto:before@example.test", _letter(1), settings)
        # The relay goes away and comes back on the same port: the kept connection is dead.
        mailbox._controller.stop()
        mailbox._controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
        mailbox._controller.start()
        send("mailto:after@example.test", _letter(2), settings)
        assert relay(settings).opened == 2
        assert [letter["to"] for letter in mailbox.letters] == ["before@example.test", "after@example.test"]


def test_every_try_of_one_notification_carries_one_message_id(monkeypatch):
    """A send retried after an answer that came too late is the same message to a mail client."""
    with Mailbox() as mailbox:
        settings = _settings(monkeypatch, mailbox.apprise_url)
        for _ in range(2):
            send("mailto:twice@example.test", _letter(1), settings, key="appealflow.7.261203-K7Q9XMA")
        send("mailto:twice@example.test", _letter(2), settings)
        ids = [letter["id"] for letter in mailbox.letters]
    assert ids[0] == ids[1] == "<appealflow.7.261203-K7Q9XMA@127.0.0.1>" and ids[2] not in ids[:2]


def test_a_relay_that_never_answers_costs_the_timeout_and_no_more(monkeypatch):
    silent = socket.socket()  # accepts connections (the backlog) but never greets
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        settings = _settings(monkeypatch, f"mailto://127.0.0.1:{silent.getsockname()[1]}?from=a@example.test", "1")
        started = time.monotonic()
        with pytest.raises(OSError):  # socket.timeout / SMTPServerDisconnected are OSErrors
            send("mailto:someone@example.test", _letter(1), settings)
        assert time.monotonic() - started < 3
    finally:
        silent.close()
