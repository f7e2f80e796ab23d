"""A small HTTP/1.1 load generator for the benchmarks: keep-alive connections on asyncio streams,
so the client costs little of the two cores it shares with the server it measures.

Closed loop: N clients, each sending its next request when the last one answered (the peak rate).
Open loop: requests scheduled at a fixed rate whatever the answers do; latency runs from the
scheduled moment, so a stall counts against every request it held up (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CONNECTIONS = 64


@dataclass
class Result:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict:
        return {"requests": self.sent, "ok": self.ok, "errors": self.errors, "seconds": round(self.seconds, 2),
                "per_s": round(self.rate, 1),
                "p50_ms": round(statistics.median(self.latencies_ms), 1) if self.latencies_ms else None,
                "p99_ms": round(self.percentile(0.99), 1) if self.latencies_ms else None,
                "max_ms": round(max(self.latencies_ms), 1) if self.latencies_ms else None}


def post_json(path: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    payload = json.dumps(body, ensure_ascii=False).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(payload)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


async def closed_loop(port: int, make_request: Callable[[int], bytes], *, clients: int, seconds: float,
                      keep_bodies: bool = False, stop_after: int | None = None) -> Result:
    """`clients` connections, each sending its next request when the last one answered, for
    `seconds` (or until `stop_after` requests have been sent)."""
    result = Result()
    counter = iter(range(10**9))
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline and (stop_after is None or result.sent < stop_after):
                request = make_request(next(counter))
                t0 = time.perf_counter()
                result.sent += 1
                try:
                    status, body = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError):  # counted, then a new connection
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    result.ok += 1
                    if keep_bodies:
                        result.bodies.append(body)
                else:
                    result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


async def open_loop(port: int, make_request: Callable[[int], bytes], *, rate: float, seconds: float,
                    on_answer: Callable[[int, bytes, float], None] | None = None) -> Result:
    """`rate` requests a second for `seconds`; `on_answer(n, body, sent_at_wall)` for each 2xx."""
    result = Result()
    idle: asyncio.Queue = asyncio.Queue()
    opened = 0
    total = int(rate * seconds)
    started = time.perf_counter()
    wall_started = time.time()

    async def one(n: int, scheduled: float) -> None:
        nonlocal opened
        if idle.empty() and opened < MAX_CONNECTIONS:
            opened += 1
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        reader, writer = await idle.get()
        result.sent += 1
        try:
            status, body = await _exchange(reader, writer, make_request(n))
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            opened -= 1
            writer.close()
            return
        result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        idle.put_nowait((reader, writer))
        if 200 <= status < 300:
            result.ok += 1
            if on_answer:
                on_answer(n, body, wall_started + (scheduled - started))
        else:
            result.errors += 1

    tasks = []
    for n in range(total):
        scheduled = started + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(n, scheduled)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds + 60)
    result.seconds = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait()[1].close()
    return result
