"""What operators watch: `/metrics` in the Prometheus text format, by the official prometheus-client.

Two kinds of figure:
  - Events counted where they happen, in every process (HTTP latency by route in the API, dispatch
    batch latency in the workers). prometheus-client's multiprocess mode keeps them in files under
    `<data dir>/prometheus` (PROMETHEUS_MULTIPROC_DIR, set by `prepare()` from the settings before
    the library is first imported: `appealflow api`, `worker` and `up` call it first thing), and
    `/metrics` on any API process adds up the files of all of them.
  - State read when scraped, from the database and Redis, which are the truth: RQ queue depths,
    appeals waiting by status, deadline clocks at risk and breached, deliveries by channel and result
    (the delivery_attempt rows every send writes).

The folder holds the counts of processes that have exited too, as Prometheus counters need;
`appealflow up` empties it as it starts, as the library asks between runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from sqlmodel import col

from appealflow.settings import Settings, get_settings

ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


def multiprocess_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).data_dir.resolve() / "prometheus"


def prepare(settings: Settings | None = None) -> Path:
    """Point prometheus-client at this data folder's files. Must run before anything imports the
    library (Prefect does), as it picks its storage once, at import."""
    folder = multiprocess_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(folder)  # the library's own switch; its value comes from Settings
    return folder


def reset(settings: Settings | None = None) -> Path:
    """Empty the folder: a new run of the whole system starts its counts at zero."""
    folder = multiprocess_dir(settings)
    shutil.rmtree(folder, ignore_errors=True)
    return prepare(settings)


def _multiprocess() -> bool:
    from prometheus_client import values

    return values.ValueClass.__name__ == "MmapedValue" and bool(os.environ.get(ENV))


_metrics: dict = {}


def _histogram(name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]):
    if name not in _metrics:
        from prometheus_client import Histogram

        _metrics[name] = Histogram(name, documentation, labels, buckets=buckets)
    return _metrics[name]


def http_histogram():
    return _histogram("appealflow_http_request_duration_seconds",
                      "HTTP requests by route template, method and status class, from the first byte in to the "
                      "last byte out", ("route", "method", "status"), HTTP_BUCKETS)


def dispatch_histogram():
    return _histogram("appealflow_dispatch_batch_seconds",
                      "One dispatch batch: from its claim to the end of its flow run", (), BATCH_BUCKETS)


def observe_dispatch_batch(seconds: float) -> None:
    """Called by the dispatch job; never lets a metrics problem fail a batch."""
    with contextlib.suppress(Exception):  # a full disk or an unwritable folder must not stop routing
        dispatch_histogram().observe(seconds)


class HttpMetrics:
    """Pure ASGI: the latency of every request, labelled by the route's template (`/appeals/{code}`),
    never the raw path, so the series stay few whatever callers send."""

    def __init__(self, app):
        self.app = app
        self.histogram = http_histogram()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.histogram.labels(route, scope.get("method", ""), f"{status // 100}xx").observe(
                time.perf_counter() - started)


class StateCollector:
    """Figures read at scrape time from the database and Redis."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def describe(self):
        return []  # collected on demand, never at registration (no I/O when the app starts)

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from appealflow.models.storage.columns import utcnow
        from appealflow.models.storage.db import session_scope

        queues = GaugeMetricFamily("appealflow_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"])
        try:
            for kind, name in _queue_depths().items():
                queues.add_metric([kind], name)
        except Exception:  # Redis down: the series go missing, which alerts say plainly
            pass
        yield queues
        waiting = GaugeMetricFamily("appealflow_appeals_waiting", "Appeals not yet closed, by status",
                                    labels=["status"])
        clocks = GaugeMetricFamily("appealflow_deadline_clocks", "Running deadline clocks past their warning "
                                   "time (at_risk) or their deadline (breached)", labels=["state"])
        deliveries = CounterMetricFamily("appealflow_deliveries", "Delivery attempts by channel and result",
                                         labels=["channel", "result"])
        repeated = GaugeMetricFamily("appealflow_messages_sent_more_than_once",
                                     "Messages with more than one sent attempt (a kill between send and mark, "
                                     "or a claim that lapsed mid-send)")
        try:
            with session_scope(self.settings.sqlalchemy_url) as session:
                for status, count in _appeals_waiting(session):
                    waiting.add_metric([status], count)
                at_risk, breached = _clocks(session, utcnow())
                clocks.add_metric(["at_risk"], at_risk)
                clocks.add_metric(["breached"], breached)
                for channel, result, count in _deliveries(session):
                    deliveries.add_metric([channel, result], count)
                repeated.add_metric([], _repeated_sends(session))
        except Exception:
            pass
        yield waiting
        yield clocks
        yield deliveries
        yield repeated


def _queue_depths() -> dict[str, int]:
    from appealflow.workers.queues import QUEUES, connect, queue

    connection = connect()
    try:
        return {kind: queue(connection, kind).count for kind in QUEUES}
    finally:
        connection.close()


def _appeals_waiting(session) -> list[tuple[str, int]]:
    from sqlalchemy import func, select

    from appealflow.models.appeals.appeal import Appeal
    from appealflow.models.appeals.enums import AppealStatus

    done = (AppealStatus.closed, AppealStatus.merged)
    counts = dict(session.execute(select(col(Appeal.status), func.count()).where(col(Appeal.status).not_in(done))
                                  .group_by(col(Appeal.status))).all())
    # Every status present, zeros too, so a graph shows a queue emptying rather than vanishing.
    return [(str(status), counts.get(status, 0)) for status in AppealStatus if status not in done]


def _clocks(session, now) -> tuple[int, int]:
    from sqlalchemy import case, func, select

    from appealflow.models.appeals.enums import ClockState
    from appealflow.models.clocks.escalation import DeadlineClock

    at_risk = (col(DeadlineClock.warn_at) <= now) & (col(DeadlineClock.due_at) > now)
    row = session.execute(select(
        func.coalesce(func.sum(case((at_risk, 1), else_=0)), 0),
        func.coalesce(func.sum(case((col(DeadlineClock.due_at) <= now, 1), else_=0)), 0),
    ).where(col(DeadlineClock.state) == ClockState.running)).one()
    return int(row[0]), int(row[1])


def _deliveries(session) -> list[tuple[str, str, int]]:
    from sqlalchemy import func, select

    from appealflow.models.telling.outbox import DeliveryAttempt

    return [(channel, result, count) for channel, result, count in session.execute(
        select(col(DeliveryAttempt.channel), col(DeliveryAttempt.result), func.count())
        .group_by(col(DeliveryAttempt.channel), col(DeliveryAttempt.result))).all()]


def _repeated_sends(session) -> int:
    from appealflow.models.telling.outbox import repeated_sends

    return repeated_sends(session)


def render(settings: Settings) -> tuple[bytes, str]:
    """The exposition: every process's counted figures (multiprocess mode) or this one's, plus the
    state read now."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    if _multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for name in ("appealflow_http_request_duration_seconds", "appealflow_dispatch_batch_seconds"):
            if name in _metrics:
                registry.register(_Forward(_metrics[name]))
    # Our own registry: the default one holds Prefect's and the platform's series, not ours.
    registry.register(StateCollector(settings))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """Exposes one metric of the default registry through another registry."""

    def __init__(self, metric):
        self.metric = metric

    def collect(self):
        return self.metric.collect()


def install(app) -> None:
    """`GET /metrics` and the latency middleware on the API."""
    from fastapi import Response
    from fastapi.concurrency import run_in_threadpool

    app.add_middleware(HttpMetrics)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = await run_in_threadpool(render, get_settings())
        return Response(body, media_type=content_type)
