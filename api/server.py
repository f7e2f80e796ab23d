"""The HTTP server's protocol with a deadline for a request's headers.

uvicorn times out only the idle wait between requests, and any byte received cancels that: a client
that connects and never sends, or sends a header a byte at a time, holds a connection for ever (a
slow-client attack ties up every connection this way). Here the headers must be complete within
APPEALFLOW_REQUEST_HEADER_TIMEOUT_SECONDS of the connection or of the previous answer; the body has
its own deadline in `errors.InputGuard`."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from appealflow.settings import get_settings


class HeaderDeadlineProtocol(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(get_settings().request_header_timeout_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
