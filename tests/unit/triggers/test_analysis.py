"""AnalysisTrigger: what the triggerer stores rebuilds the same trigger, with no secret in it."""

from __future__ import annotations

import asyncio
import importlib
import time

from stella_operators.analysis.model import Analysis
from stella_operators.triggers.analysis import AnalysisTrigger

ANALYSIS = Analysis.model_validate({"metrics": [{"name": "errors", "query": "up", "success_condition": "result > 0"}]})


def test_round_trip_carries_connection_ids_not_credentials():
    t = AnalysisTrigger(analysis=ANALYSIS.model_dump(mode="json"), started_at="2026-11-30T03:00:00+00:00",
                        prometheus_conn_id="prom_prod")
    path, kwargs = t.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs["prometheus_conn_id"] == "prom_prod" and Analysis.model_validate(kwargs["analysis"]) == ANALYSIS


def test_a_broken_analysis_ends_with_an_error_event_instead_of_hanging():
    t = AnalysisTrigger(analysis={"metrics": []}, started_at="2026-11-30T03:00:00+00:00", min_runtime_s=0)

    async def first():
        return await anext(t.run())
    event = asyncio.run(first())
    assert event.payload["outcome"] == "error" and "ValidationError" in event.payload["error"]


def test_the_event_waits_out_the_minimum_runtime():
    t = AnalysisTrigger(analysis={"metrics": []}, started_at="2026-11-30T03:00:00+00:00", min_runtime_s=0.5)

    async def first():
        return await anext(t.run())
    t0 = time.monotonic()
    asyncio.run(first())
    assert time.monotonic() - t0 >= 0.5
