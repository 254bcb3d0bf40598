"""The analysis schedule (analysis/runner.py) on a fake clock: measurements when due, fail fast,
no burst after a late resume, and a JSON-safe report."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime, timedelta

from stella_operators.analysis.evaluate import Sample
from stella_operators.analysis.model import Analysis
from stella_operators.analysis.runner import run_analysis

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def now(self) -> datetime:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += timedelta(seconds=s)


def run(analysis: dict, values, clock: Clock, started_at: datetime = T0):
    taken: list[tuple[str, float]] = []

    async def take(metric, at):
        taken.append((metric.name, (at - T0).total_seconds()))
        v = values(metric.name, len([x for x in taken if x[0] == metric.name]))
        return v if isinstance(v, Sample) else Sample((v,))
    done = asyncio.run(run_analysis(Analysis.model_validate(analysis), take, started_at, now=clock.now,
                                    sleep=clock.sleep))
    return done, taken


def m(name="errors", **kw):
    return {"name": name, "query": "q", "success_condition": "result < 0.05", "interval_s": 10, **kw}


def test_pass_after_count_measurements_on_schedule():
    done, taken = run({"metrics": [m(count=3, initial_delay_s=5)]}, lambda n, i: 0.0, Clock(T0))
    assert done.result.outcome == "pass"
    assert taken == [("errors", 5.0), ("errors", 15.0), ("errors", 25.0)]


def test_failure_ends_the_run_at_once_within_the_bound():
    # failure_limit 1: the second failed measurement ends it; other metrics are not waited for
    analysis = {"metrics": [m(count=10, failure_limit=1), m("latency", count=10, interval_s=30)]}
    done, taken = run(analysis, lambda n, i: 0.2 if n == "errors" else 0.0, Clock(T0))
    assert done.result.outcome == "fail" and done.result.reasons == ("analysis.failure_limit",)
    assert taken[-1] == ("errors", 10.0)  # interval x failure_limit after the first failing one
    report = done.report()
    assert report["outcome"] == "fail"
    assert [x["phase"] for x in report["metrics"][0]["measurements"]] == ["failed", "failed"]


def test_no_data_is_inconclusive_and_the_report_is_json_safe():
    done, _ = run({"metrics": [m(count=3)]}, lambda n, i: Sample((math.nan,)), Clock(T0))
    assert done.result.outcome == "inconclusive"
    r = done.report()
    json.dumps(r, allow_nan=False)
    assert r["metrics"][0]["measurements"][0]["message"] == "no data (only NaN)"


def test_infinite_values_are_reported_as_text():
    done, _ = run({"metrics": [m(success_condition="result > 1.0")]}, lambda n, i: math.inf, Clock(T0))
    assert done.report()["metrics"][0]["measurements"][0]["values"] == ["+Inf"]


def test_a_late_resume_skips_missed_measurements_instead_of_bursting():
    clock = Clock(T0 + timedelta(seconds=95))  # resumed 95 s after the start
    done, taken = run({"metrics": [m(count=2)]}, lambda n, i: 0.0, clock)
    assert done.result.outcome == "pass"
    assert [t for _, t in taken] == [95.0, 100.0]  # the one due at 90 (late < 1 interval), then on schedule
