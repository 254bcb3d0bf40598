"""Metric providers: take one Sample for a Metric from Prometheus or from any HTTP/JSON endpoint.

Plain Python (httpx, async so the triggerer never blocks). Where to ask and with which
credentials is an `Endpoint` built by the Airflow layer from a Connection (hooks/metrics.py),
never from the estate file. Every failure becomes `Sample(error=...)` saying what went wrong and
where; nothing raises out of `take_sample` for a provider or network problem.

Parsing is pure and tested from answers recorded from a real Prometheus 2.42
(tests/unit/analysis/fixtures/prometheus/).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from stella_operators.analysis.evaluate import Sample
from stella_operators.analysis.model import Metric

# A range query asks for about this many points over `range_s` (step = range_s / RANGE_POINTS,
# at least 1 s): `min_samples` counts them.
RANGE_POINTS = 10

# Takes one Sample of a metric at a given time.
Sampler = Callable[[Metric, datetime], Awaitable[Sample]]


class ProviderError(Exception):
    """The provider answered something that is not a usable result (the message says what)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a provider is reached: base URL, optional Basic auth and extra headers (secrets: repr hides them)."""

    base_url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 10.0
    verify_tls: bool = True


def number(raw: Any, where: str) -> float:
    """A JSON value as a float: numbers, numeric strings, and Prometheus' "NaN", "+Inf", "-Inf", "Inf"."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ProviderError(f"{where}: expected a number, got {type(raw).__name__} {raw!r:.60}")
    try:
        return float(raw)  # float() accepts "NaN", "Inf", "+Inf", "-Inf", "inf"
    except ValueError:
        raise ProviderError(f"{where}: expected a number, got {raw!r:.60}") from None


def prometheus_values(payload: Any) -> tuple[float, ...]:
    """The numbers in a Prometheus /api/v1/query or /query_range answer (vector, matrix or scalar).

    Every series contributes its value (vector) or all its values (matrix); NaN is kept (the
    evaluation treats it as no data); an empty result is an empty tuple.
    """
    if not isinstance(payload, dict):
        raise ProviderError(f"not a Prometheus API answer: {payload!r:.120}")
    if payload.get("status") != "success":
        raise ProviderError(f"Prometheus {payload.get('errorType', 'error')}: {payload.get('error', payload)!s:.300}")
    data = payload.get("data")
    if not isinstance(data, dict) or "result" not in data:
        raise ProviderError(f"Prometheus answer without data.result: {payload!r:.120}")
    kind, result = data.get("resultType"), data["result"]
    if kind == "scalar":
        return (number(result[1], "scalar"),)
    if kind == "vector":
        return tuple(number(s["value"][1], f"series {s.get('metric', {})}") for s in result)
    if kind == "matrix":
        return tuple(number(v[1], f"series {s.get('metric', {})}") for s in result for v in s["values"])
    raise ProviderError(f"Prometheus result type {kind!r} is not numeric (use a query that returns numbers)")


def json_path_values(document: Any, path: str) -> tuple[float, ...]:
    """The number(s) at a dotted path: `data.error_rate`, `items.0.value`, `items.*.value` (`*`: every item).

    A null (or a missing key under `*`) is no data and is left out; anything else not a number is an error.
    """
    nodes: list[Any] = [document]
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        nxt: list[Any] = []
        for node in nodes:
            if part == "*" and isinstance(node, list):
                nxt.extend(node)
            elif isinstance(node, list) and part.lstrip("-").isdigit():
                if not -len(node) <= int(part) < len(node):
                    raise ProviderError(f"json_path {path!r}: index {part} out of range at {'.'.join(walked)}")
                nxt.append(node[int(part)])
            elif isinstance(node, dict) and part in node:
                nxt.append(node[part])
            elif len(nodes) == 1:
                raise ProviderError(f"json_path {path!r}: nothing at {'.'.join(walked)} "
                                    f"(found {type(node).__name__} {str(node)[:80]!r})")
        nodes = nxt
    return tuple(number(n, f"json_path {path!r}") for n in nodes if n is not None)


def prometheus_request(metric: Metric, query: str, now: datetime) -> tuple[str, dict[str, str]]:
    """(path, params) of the query: instant at `now`, or over the last `range_s` when set."""
    ts = now.timestamp()
    if metric.range_s is None:
        return "/api/v1/query", {"query": query, "time": f"{ts:.3f}"}
    step = max(1.0, metric.range_s / RANGE_POINTS)
    return "/api/v1/query_range", {"query": query, "start": f"{ts - metric.range_s:.3f}", "end": f"{ts:.3f}",
                                   "step": f"{step:g}"}


def _explain_status(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("status") == "error":
        return f"Prometheus {body.get('errorType', 'error')}: {body.get('error', '')!s:.300}"
    return f"HTTP {response.status_code} from {response.request.url.copy_with(query=None)}: {response.text[:200]!r}"


async def _prometheus(client: httpx.AsyncClient, endpoint: Endpoint, metric: Metric, query: str,
                      now: datetime) -> tuple[float, ...]:
    path, params = prometheus_request(metric, query, now)
    params["timeout"] = f"{endpoint.timeout_s:g}s"
    response = await client.get(endpoint.base_url.rstrip("/") + path, params=params, auth=endpoint.auth,
                                headers=endpoint.headers, timeout=endpoint.timeout_s)
    if response.status_code != 200:
        raise ProviderError(_explain_status(response))
    try:
        return prometheus_values(response.json())
    except ValueError as exc:  # ProviderError is not a ValueError; this is JSON decoding
        raise ProviderError(f"Prometheus answered non-JSON: {response.text[:200]!r}") from exc


async def _http_json(client: httpx.AsyncClient, endpoint: Endpoint | None, metric: Metric,
                     url: str) -> tuple[float, ...]:
    # Credentials go only to URLs under the Connection's base URL: an absolute URL elsewhere gets none.
    auth: tuple[str, str] | None = None
    headers: dict[str, str] = {}
    timeout = 10.0
    if endpoint is not None:
        timeout = endpoint.timeout_s
        base = endpoint.base_url.rstrip("/")
        if "://" not in url:
            url = base + "/" + url.lstrip("/")
        if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
            auth, headers = endpoint.auth, endpoint.headers
    elif "://" not in url:
        raise ProviderError(f"URL {url!r} is relative but no HTTP connection gives a base URL")
    response = await client.get(url, auth=auth, headers=headers, timeout=timeout)
    if response.status_code != 200:
        raise ProviderError(f"HTTP {response.status_code} from {url.split('?')[0]}: {response.text[:200]!r}")
    try:
        document = response.json()
    except ValueError:
        raise ProviderError(f"{url.split('?')[0]} answered non-JSON: {response.text[:200]!r}") from None
    assert metric.json_path is not None  # the model requires it for http_json
    return json_path_values(document, metric.json_path)


async def _values(client: httpx.AsyncClient, endpoint: Endpoint | None, metric: Metric, query: str,
                  now: datetime) -> tuple[float, ...]:
    if metric.provider == "prometheus":
        if endpoint is None:
            raise ProviderError("no Prometheus endpoint configured (Airflow Connection)")
        return await _prometheus(client, endpoint, metric, query, now)
    return await _http_json(client, endpoint, metric, query)


async def take_sample(client: httpx.AsyncClient, endpoint: Endpoint | None, metric: Metric, now: datetime) -> Sample:
    """One measurement's raw numbers (and the baseline's), or the error that prevented it."""
    where = f"metric {metric.name} ({metric.provider})"
    try:
        values = await _values(client, endpoint, metric, metric.query, now)
        baseline: tuple[float, ...] = ()
        if metric.baseline_query:
            baseline = await _values(client, endpoint, metric, metric.baseline_query, now)
    except ProviderError as exc:
        return Sample(error=f"{where}: {exc}")
    except httpx.TimeoutException:
        return Sample(error=f"{where}: no answer within {endpoint.timeout_s if endpoint else 10.0:g} s")
    except httpx.HTTPError as exc:
        return Sample(error=f"{where}: {type(exc).__name__}: {exc}")
    return Sample(values=values, baseline=baseline)


@asynccontextmanager
async def open_sampler(endpoints: dict[str, Endpoint | None]) -> AsyncIterator[Sampler]:
    """A Sampler over one HTTP client per provider (`prometheus`, `http_json` -> its Endpoint or None)."""
    async with AsyncExitStack() as stack:
        clients: dict[str, httpx.AsyncClient] = {}
        for provider, endpoint in endpoints.items():
            client = httpx.AsyncClient(verify=endpoint.verify_tls if endpoint else True, follow_redirects=False)
            clients[provider] = await stack.enter_async_context(client)

        async def take(metric: Metric, now: datetime) -> Sample:
            if metric.provider not in clients:
                return Sample(error=f"metric {metric.name}: no endpoint for provider {metric.provider}")
            return await take_sample(clients[metric.provider], endpoints[metric.provider], metric, now)

        yield take


def finite_or_text(value: float) -> float | str:
    """JSON-safe: +Inf / -Inf / NaN as Prometheus spells them (JSON has no such numbers)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value
