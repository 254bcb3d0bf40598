"""AnalysisTrigger: run a metric analysis in the triggerer and fire once its outcome is known."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from stella_operators.analysis.model import Analysis
from stella_operators.analysis.providers import Endpoint, open_sampler
from stella_operators.analysis.runner import run_analysis
from stella_operators.hooks.metrics import MetricsEndpointHook
from stella_operators.triggers.ledger_poll import MIN_WAIT_S


class AnalysisTrigger(BaseTrigger):
    """Measures each metric when due (analysis/runner.py), evaluates after every measurement and
    yields one event as soon as the outcome is pass, fail or inconclusive (a failure ends it at once).

    Only reads (it may run twice). Credentials are looked up here from the Connections, never
    carried in the trigger's kwargs (they are stored in the metadata DB).

    :param analysis: the Analysis as JSON-able dict (``Analysis.model_dump(mode="json")``).
    :param started_at: ISO time the schedule counts from (initial delay, intervals).
    :param prometheus_conn_id: Connection of the Prometheus server (needed when a metric uses it).
    :param http_conn_id: optional Connection giving base URL/credentials to http_json metrics.
    :param min_runtime_s: the event is never yielded sooner than this after the trigger started
        (measurements still run on schedule): a trigger firing seconds after deferral can get the
        resumed task failed in Airflow 3.3 (see triggers/ledger_poll.py MIN_WAIT_S).
    """

    def __init__(self, analysis: dict[str, Any], started_at: str, prometheus_conn_id: str = "stella_prometheus",
                 http_conn_id: str | None = None, min_runtime_s: float = MIN_WAIT_S):
        super().__init__()
        self.min_runtime_s = min_runtime_s
        self.analysis = analysis
        self.started_at = started_at
        self.prometheus_conn_id = prometheus_conn_id
        self.http_conn_id = http_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"analysis": self.analysis, "started_at": self.started_at,
                 "prometheus_conn_id": self.prometheus_conn_id, "http_conn_id": self.http_conn_id,
                 "min_runtime_s": self.min_runtime_s})

    async def _endpoints(self, analysis: Analysis) -> dict[str, Endpoint | None]:
        providers = {m.provider for m in analysis.metrics}
        endpoints: dict[str, Endpoint | None] = {}
        if "prometheus" in providers:
            endpoints["prometheus"] = await MetricsEndpointHook(self.prometheus_conn_id).aget_conn()
        if "http_json" in providers:
            endpoints["http_json"] = (await MetricsEndpointHook(self.http_conn_id, required=False).aget_conn()
                                      if self.http_conn_id else None)
        return endpoints

    async def run(self) -> AsyncIterator[TriggerEvent]:
        started = time.monotonic()
        event = await self._analyse()
        await asyncio.sleep(max(0.0, self.min_runtime_s - (time.monotonic() - started)))
        yield TriggerEvent(event)

    async def _analyse(self) -> dict[str, Any]:
        try:
            analysis = Analysis.model_validate(self.analysis)
            endpoints = await self._endpoints(analysis)
            async with open_sampler(endpoints) as take:
                done = await run_analysis(analysis, take, datetime.fromisoformat(self.started_at))
        except Exception as exc:  # noqa: BLE001 - the task must learn why, not hang deferred
            return {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"}
        return done.report()
