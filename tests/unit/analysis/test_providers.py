"""Providers: parsing answers recorded from a real Prometheus 2.42 (fixtures/prometheus/), the
HTTP/JSON path, and every error path turned into a Sample error that says what and where."""

from __future__ import annotations

import asyncio
import json
import math
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from stella_operators.analysis.evaluate import Sample, measure
from stella_operators.analysis.model import Metric
from stella_operators.analysis.providers import (
    Endpoint,
    ProviderError,
    json_path_values,
    prometheus_request,
    prometheus_values,
    take_sample,
)

FIXTURES = Path(__file__).parent / "fixtures" / "prometheus"
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
PROM = Endpoint("http://prom.test:9090", auth=("reader", "s3cret"), headers={"X-Scope-OrgID": "shop"}, timeout_s=2)


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def metric(**kw) -> Metric:
    return Metric.model_validate({"name": "error-rate", "query": "q", "success_condition": "result < 0.05", **kw})


@pytest.mark.parametrize("name, expected", [
    ("vector_error_ratio", [0.0, 0.2105263157894737]),   # one value per series (versions v1, v2)
    ("vector_empty", []),
    ("scalar", [0.5]),
    ("matrix_range", [0.2105263157894737, 0.21052631578947367]),  # every point of every series
])
def test_recorded_results_become_values(name, expected):
    assert list(prometheus_values(recorded(name)["body"])) == pytest.approx(expected)


def test_nan_is_kept_as_nan_and_inf_as_infinity():
    [nan] = prometheus_values(recorded("vector_nan")["body"])
    [inf] = prometheus_values(recorded("vector_inf")["body"])
    assert math.isnan(nan) and inf == math.inf
    # NaN is "no data" for the evaluation; +Inf is a value (a ratio over zero errors) conditions see
    assert measure(metric(), Sample((nan,))).message == "no data (only NaN)"
    assert measure(metric(), Sample((inf,))).phase == "failed"


def test_non_numeric_results_and_error_answers_are_refused_with_the_reason():
    with pytest.raises(ProviderError, match="result type 'string' is not numeric"):
        prometheus_values(recorded("string")["body"])
    with pytest.raises(ProviderError, match="bad_data: invalid parameter .*unclosed left parenthesis"):
        prometheus_values(recorded("error_bad_data")["body"])
    with pytest.raises(ProviderError, match="not a Prometheus API answer"):
        prometheus_values(["nope"])


def test_instant_and_range_requests():
    instant = ("/api/v1/query", {"query": "up", "time": f"{NOW.timestamp():.3f}"})
    assert prometheus_request(metric(), "up", NOW) == instant
    path, params = prometheus_request(metric(range_s=60), "up", NOW)
    assert path == "/api/v1/query_range"
    assert float(params["end"]) - float(params["start"]) == 60 and params["step"] == "6"
    assert prometheus_request(metric(range_s=5), "up", NOW)[1]["step"] == "1"  # never below 1 s


@pytest.mark.parametrize("doc, path, expected", [
    ({"data": {"error_rate": 0.02}}, "data.error_rate", [0.02]),
    ({"items": [{"v": 1}, {"v": "2.5"}, {"v": None}]}, "items.*.v", [1.0, 2.5]),
    ({"items": [{"v": 1}, {"v": 3}]}, "items.1.v", [3.0]),
    ({"r": "NaN"}, "r", [math.nan]),
    ({"r": None}, "r", []),
])
def test_json_path(doc, path, expected):
    got = json_path_values(doc, path)
    assert len(got) == len(expected)
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got, expected, strict=True))


@pytest.mark.parametrize("doc, path, message", [
    ({"data": {}}, "data.error_rate", "nothing at data.error_rate"),
    ({"items": [1]}, "items.3", "index 3 out of range at items.3"),
    ({"r": "fast"}, "r", "expected a number, got 'fast'"),
    ({"r": True}, "r", "expected a number, got bool"),
])
def test_json_path_errors_say_where(doc, path, message):
    with pytest.raises(ProviderError, match=message):
        json_path_values(doc, path)


def sample_via(handler, m: Metric, endpoint: Endpoint | None = PROM) -> Sample:
    async def go():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await take_sample(client, endpoint, m, NOW)
    return asyncio.run(go())


def replay(name: str, seen: list | None = None):
    rec = recorded(name)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(rec["http_status"], json=rec["body"])
    return handler


def test_prometheus_sample_with_baseline_and_credentials_from_the_endpoint():
    seen: list[httpx.Request] = []
    s = sample_via(replay("vector_error_ratio", seen), metric(baseline_query="base"))
    assert s.error is None and s.values == s.baseline and len(s.values) == 2
    assert [r.url.params["query"] for r in seen] == ["q", "base"]
    assert all(r.url.path == "/api/v1/query" and r.headers["X-Scope-OrgID"] == "shop"
               and r.headers["Authorization"].startswith("Basic ") for r in seen)
    assert seen[0].url.params["timeout"] == "2s"


def test_error_answer_becomes_a_sample_error_naming_the_metric():
    s = sample_via(replay("error_bad_data"), metric())
    assert s.error == ('metric error-rate (prometheus): Prometheus bad_data: invalid parameter "query": '
                       "1:38: parse error: unclosed left parenthesis")


def test_http_errors_and_non_json_answers():
    s = sample_via(lambda r: httpx.Response(502, text="<html>bad gateway</html>"), metric())
    assert s.error.startswith("metric error-rate (prometheus): HTTP 502 from http://prom.test:9090/api/v1/query")
    s = sample_via(lambda r: httpx.Response(200, text="<html>login</html>"), metric())
    assert "answered non-JSON" in s.error
    assert "no Prometheus endpoint" in sample_via(replay("scalar"), metric(), endpoint=None).error


def test_timeout_and_refused_connection_are_sample_errors():
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        async def go(ep):
            async with httpx.AsyncClient() as client:
                return await take_sample(client, ep, metric(), NOW)
        s = asyncio.run(go(Endpoint(f"http://127.0.0.1:{port}", timeout_s=0.3)))
        assert s.error == "metric error-rate (prometheus): no answer within 0.3 s"
    s = asyncio.run(go(Endpoint(f"http://127.0.0.1:{port}", timeout_s=0.3)))  # socket closed now
    assert s.error.startswith("metric error-rate (prometheus): ConnectError")


def test_http_json_credentials_only_go_to_the_connection_base_url():
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json={"stats": {"errors": 0.01}})
    ep = Endpoint("http://stats.test/api", auth=("u", "p"))
    m = metric(provider="http_json", query="/canary", json_path="stats.errors",
               baseline_query="http://elsewhere.test/api/stable")
    s = sample_via(handler, m, ep)
    assert s == Sample(values=(0.01,), baseline=(0.01,))
    assert str(seen[0].url) == "http://stats.test/api/canary" and "Authorization" in seen[0].headers
    assert str(seen[1].url) == "http://elsewhere.test/api/stable" and "Authorization" not in seen[1].headers
    relative = sample_via(handler, m, None)
    assert "relative but no HTTP connection" in relative.error
