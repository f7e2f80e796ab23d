"""A real browser for the page tests: Playwright for Python driving Debian's Chromium
(/usr/bin/chromium, installed by deploy/test.sh when missing; Playwright never downloads a browser
here). One browser for the whole session; each walk gets fresh contexts."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from tests.receivers import SmtpReceiver

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# As root on a closed network: no sandbox, no GPU, and none of the calls home Chromium makes at start.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (deploy/test.sh does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


class MailReceiver(SmtpReceiver):
    """The SMTP receiver, keeping each message's text too: the walk follows the links in it."""

    def __init__(self):
        super().__init__()
        self.bodies: list[tuple[str, str, str]] = []  # (recipient, subject, plain text)
        self._bodies_lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
        with self._bodies_lock:
            self.bodies.extend((rcpt, str(message["Subject"] or ""), text) for rcpt in envelope.rcpt_tos)
        return await super().handle_DATA(server, session, envelope)

    def to(self, recipient: str) -> list[tuple[str, str]]:
        with self._bodies_lock:
            return [(subject, text) for rcpt, subject, text in self.bodies if rcpt == recipient]


@pytest.fixture
def smtp() -> Iterator[MailReceiver]:
    with MailReceiver() as receiver:
        yield receiver
