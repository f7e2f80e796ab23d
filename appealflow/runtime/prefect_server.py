"""Prefect's server as `prefect server start` runs it (one uvicorn process, the API and its services),
with one change: a request that found the server's SQLite database busy is tried again inside the
server, after a short pause, before its 503 reaches the client.

Prefect answers 503 when SQLite reports a busy or locked database (a transaction that read, then
lost the race to write: SQLite does not wait for that one), and its clients back off 2, 4, 8, 16 s.
At 50 appeals/s that kept some dispatch batches waiting 6 to 30 s for a lock held a few
milliseconds. The rolled-back request had no effect, and is the one the client would send again.

    python -m appealflow.runtime.prefect_server --host 127.0.0.1 --port 4200
"""

from __future__ import annotations

import argparse
import asyncio

# Pauses between tries inside the server: 1.55 s in all, then the 503 goes out and the client's
# own backoff takes over, as before.
BUSY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)


class RetryBusy:
    """ASGI middleware: an HTTP request answered 503 is replayed, with its body, after each pause."""

    def __init__(self, app, pauses: tuple[float, ...] = BUSY_PAUSES):
        self.app = app
        self.pauses = pauses

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        for pause in (*self.pauses, None):
            if not await self._try(scope, bytes(body), receive, send, last=pause is None):
                return
            await asyncio.sleep(pause)

    async def _try(self, scope, body: bytes, receive, send, *, last: bool) -> bool:
        """Run the app once; True when it answered 503 and that answer was held back."""
        delivered = False
        busy = False

        async def replay():
            nonlocal delivered
            if delivered:  # after the body, only the client's disconnect is left to hear
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def relay(message):
            nonlocal busy
            if message["type"] == "http.response.start" and message["status"] == 503 and not last:
                busy = True
            if not busy:
                await send(message)

        try:
            # A copy per try: Starlette's mounts rewrite the scope's path in place as they route it.
            await self.app(dict(scope), replay, relay)
        except Exception:
            # Starlette raises the error again after its handler answered 503: the answer held back
            # is the retry; anything else is the server's own failure.
            if not busy:
                raise
        return busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args()

    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import PREFECT_SERVER_API_KEEPALIVE_TIMEOUT

    uvicorn.run(RetryBusy(create_app(final=True)), host=args.host, port=args.port,
                timeout_keep_alive=PREFECT_SERVER_API_KEEPALIVE_TIMEOUT.value(), log_level="warning")


if __name__ == "__main__":
    main()
