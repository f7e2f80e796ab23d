"""Receivers that keep whole messages (the requester's loop reads the links inside them), and one
that can be taken down and brought back on the same port, like a gateway that goes away."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.receivers import SmtpReceiver


class Mailbox(SmtpReceiver):
    """An SMTP receiver keeping every message: recipient, subject, plain text and HTML."""

    def __init__(self):
        super().__init__()
        self.letters: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                self.letters.append({"to": rcpt, "subject": str(parsed["Subject"]), "id": str(parsed["Message-ID"]),
                                     "text": text.get_content() if text else "",
                                     "html": html.get_content() if html else "",
                                     # Inline pictures by Content-ID, as a mail client finds them.
                                     "images": {str(part["Content-ID"]).strip("<>"): part.get_content()
                                                for part in parsed.walk() if part.get_content_type() == "image/png"}})
        return await super().handle_DATA(server, session, envelope)

    def to(self, address: str) -> list[dict]:
        with self._lock:
            return [m for m in self.letters if m["to"] == address]


class Gateway:
    """An HTTP endpoint for Apprise json:// posts (SMS gateway, group bots). `down()` closes its
    port (connections refused), `up()` opens it again on the same port."""

    def __init__(self):
        from appealflow.runtime.services import free_port

        self.port = free_port()
        self.received: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def up(self) -> Gateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                with gateway._lock:
                    gateway.received.append(dict(body, path=self.path))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def at(self, path: str) -> list[dict]:
        with self._lock:
            return [m for m in self.received if m["path"] == path]
