"""/metrics after a small run: every family the operators' dashboards need is there, with values
that follow what happened (appeals posted, dispatched, delivered, clocks past their deadlines)."""

from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from appealflow.settings import get_settings
from tests.test_dispatch_end_to_end import count_by_status, wait_for

BODY = {"type": "complaint", "title": "楼上漏水", "text": "楼上邻居家漏水到我家，协商无果。",
        "category": "neighbourhood_disputes", "location": {"district": "shinan", "street": "badaguan"},
        "requester": {"email": "r@example.test"}}


def scrape(api: httpx.Client) -> dict[tuple[str, tuple], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_a_small_run(stack, smtp, tmp_path, monkeypatch):
    clock = tmp_path / "clock"
    clock.write_text("0")
    # A system of its own (clock, and the data folder its counts are kept in), counting from zero.
    for key, value_ in {"APPEALFLOW_CLOCK_FILE": str(clock), "APPEALFLOW_DATA_DIR": str(tmp_path / "var")}.items():
        monkeypatch.setenv(key, value_)
        stack.env[key] = value_
    get_settings.cache_clear()
    api = httpx.Client(base_url=stack.start_api(), timeout=30)
    stack.start_worker()
    codes = [api.post("/appeals", json=BODY).json()["code"] for _ in range(3)]
    assert len(set(codes)) == 3
    assert api.get(f"/appeals/{codes[0]}").status_code in (401, 404)  # a route with a parameter, refused
    url = get_settings().sqlalchemy_url
    wait_for(lambda: count_by_status(url)["dispatched"] == 3, timeout=60, what="dispatch")
    wait_for(lambda: len(smtp.messages) >= 6, timeout=60, what="received and dispatched notices")

    def delivered():
        samples = scrape(api)
        return (value(samples, "appealflow_deliveries_total", channel="email", result="sent") or 0) >= 6, samples

    _, samples = wait_for(delivered, timeout=30, what="deliveries counted")
    assert value(samples, "appealflow_appeals_waiting", status="dispatched") == 3
    assert value(samples, "appealflow_appeals_waiting", status="received") == 0
    for queue in ("dispatch", "delivery"):
        assert value(samples, "appealflow_queue_depth", queue=queue) is not None
    assert value(samples, "appealflow_dispatch_batch_seconds_count") >= 1
    assert value(samples, "appealflow_dispatch_batch_seconds_sum") > 0
    assert value(samples, "appealflow_http_request_duration_seconds_count",
                 route="/appeals", method="POST", status="2xx") == 3
    # The template, never the raw path: one series for every code.
    assert value(samples, "appealflow_http_request_duration_seconds_count",
                 route="/appeals/{code}", method="GET", status="4xx") == 1
    assert not any(codes[0] in str(labels) for _, labels in samples)
    assert value(samples, "appealflow_deadline_clocks", state="breached") == 0
    assert value(samples, "appealflow_messages_sent_more_than_once") == 0

    clock.write_text(str(timedelta(days=30).total_seconds()))  # a month later, in every process
    samples = scrape(api)
    assert value(samples, "appealflow_deadline_clocks", state="breached") >= 3
    assert value(samples, "appealflow_deadline_clocks", state="at_risk") == 0
    api.close()
