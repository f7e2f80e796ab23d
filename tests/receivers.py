"""Real local receivers for notifications: an SMTP server and an HTTP endpoint."""

from __future__ import annotations

import json
import threading
from collections import Counter
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from appealflow.runtime.services import free_port

# Only the subject is read: parsing whole messages cost the receiver more CPU than the sender spent.
_HEADERS = BytesHeaderParser()

class SmtpReceiver:
    """Collects every message; `messages` holds (recipient, subject) pairs."""

    def __init__(self):
        self.port = free_port()
        self.messages: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        subject = str(make_header(decode_header(_HEADERS.parsebytes(envelope.content)["Subject"] or "")))
        with self._lock:
            self.messages.extend((rcpt, subject) for rcpt in envelope.rcpt_tos)
        return "250 OK"

    @property
    def apprise_url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=12345@appealflow.test"

    def counts(self) -> Counter:
        with self._lock:
            return Counter(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *_):
        self._controller.stop()


class HttpReceiver:
    """Accepts Apprise json:// posts; answers 500 to the first `fail_first` of them."""

    def __init__(self, fail_first: int = 0):
        self.port = free_port()
        self.received: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                    if not failing:
                        receiver.received.append(dict(json.loads(body), path=self.path))
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *_):
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> HttpReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_):
        self._server.shutdown()
        self._server.server_close()
