"""The Prefect server's busy retries: a 503 is replayed inside the server, with the request's body,
and passed on only when every try was busy."""

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from appealflow.runtime.prefect_server import RetryBusy


class BusyFor:
    """An ASGI app that answers 503 to its first `busy` requests, then echoes the body it was sent.
    Like Prefect's server (Starlette's error middleware), it raises the error again after its 503."""

    def __init__(self, busy: int):
        self.busy = busy
        self.bodies: list[bytes] = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.bodies.append(message["body"])
        status, body = (503, b'{"exception_message": "Service Unavailable"}') if len(self.bodies) <= self.busy \
            else (200, message["body"])
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        if status == 503:
            raise RuntimeError("database is locked")


def post(app, payload: dict) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://prefect") as client:
            return await client.post("/api/flow_runs/", content=json.dumps(payload))
    # In a thread of its own: a test process that ran the browser tests first still has Playwright's
    # event loop running in this thread (its browser is session-wide), and asyncio.run refuses that.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def test_a_busy_answer_is_tried_again_with_the_same_body():
    inner = BusyFor(busy=2)
    response = post(RetryBusy(inner, pauses=(0.01, 0.01, 0.01)), {"name": "dispatch-appeals", "n": 1})
    assert response.status_code == 200
    assert response.json() == {"name": "dispatch-appeals", "n": 1}
    assert len(inner.bodies) == 3 and len(set(inner.bodies)) == 1


def test_a_database_busy_on_every_try_reaches_the_client_as_503():
    inner = BusyFor(busy=100)
    response = post(RetryBusy(inner, pauses=(0.01, 0.01)), {"n": 2})
    assert response.status_code == 503
    assert len(inner.bodies) == 3  # the first try and one after each pause


def test_other_answers_pass_through_at_once():
    inner = BusyFor(busy=0)
    response = post(RetryBusy(inner, pauses=(5.0,)), {"n": 3})
    assert response.status_code == 200 and len(inner.bodies) == 1
