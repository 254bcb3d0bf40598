"""Analysis semantics: measurement phases, limits, inconclusive, consecutive errors, minimum samples,
NaN / empty results, baseline comparison, and the analysis outcome."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from stella_operators.analysis.evaluate import Sample, evaluate, measure, metric_phase, next_measurement_at
from stella_operators.analysis.model import Analysis, Metric

NAN = math.nan


def metric(**kw) -> Metric:
    base = {"name": "error-rate", "query": "q", "success_condition": "result < 0.01"}
    return Metric.model_validate({**base, **kw})


@pytest.mark.parametrize("kw, sample, phase, message", [
    ({}, Sample((0.001,)), "successful", ""),
    ({}, Sample((0.2,)), "failed", "success_condition result < 0.01 is false"),
    ({"failure_condition": "result >= 0.05"}, Sample((0.02,)), "inconclusive", "neither condition is true"),
    ({"failure_condition": "result >= 0.05"}, Sample((0.2,)), "failed", "failure_condition result >= 0.05 is true"),
    ({"success_condition": None, "failure_condition": "result >= 0.05"}, Sample((0.02,)), "successful", ""),
    ({}, Sample(()), "inconclusive", "no data"),
    ({}, Sample((NAN, NAN)), "inconclusive", "no data (only NaN)"),
    ({"min_samples": 3}, Sample((0.0, NAN, 0.0)), "inconclusive", "not enough samples (2 < 3)"),
    ({"min_samples": 3, "success_condition": "results.all(r, r < 0.01)"}, Sample((0.0, 0.0, 0.001)),
     "successful", ""),
    ({}, Sample(error="connection refused"), "error", "connection refused"),
    ({"success_condition": "result"}, Sample((1.0,)), "error", "must be true or false"),
    ({"success_condition": "result < 0.01", "failure_condition": "missing_var > 1"}, Sample((0.0,)), "error",
     "condition could not be evaluated"),
])
def test_one_measurement(kw, sample, phase, message):
    got = measure(metric(**kw), sample)
    assert got.phase == phase
    assert message in got.message


def test_baseline_versus_canary():
    m = metric(baseline_query="q_base", success_condition="result <= baseline * 1.2")
    assert measure(m, Sample((0.011,), baseline=(0.010,))).phase == "successful"
    assert measure(m, Sample((0.030,), baseline=(0.010,))).phase == "failed"
    nobase = measure(m, Sample((0.011,), baseline=()))
    assert (nobase.phase, nobase.message) == ("inconclusive", "no baseline data")


def phases(m: Metric, *samples: Sample):
    return metric_phase(m, [measure(m, s) for s in samples])


OK, BAD, ERR, NODATA = Sample((0.0,)), Sample((0.5,)), Sample(error="timeout"), Sample(())


def test_failure_limit_tolerates_that_many_failures_then_fails():
    m = metric(count=5, failure_limit=1)
    assert phases(m, OK, BAD, OK).phase == "running"
    state = phases(m, OK, BAD, OK, BAD)
    assert (state.phase, state.reason) == ("failed", "analysis.failure_limit")


def test_it_fails_at_the_first_bad_measurement_with_no_failure_limit():
    state = phases(metric(count=10), BAD)
    assert (state.phase, state.reason) == ("failed", "analysis.failure_limit")


def test_inconclusive_limit():
    m = metric(count=5, inconclusive_limit=1)
    assert phases(m, NODATA, OK).phase == "running"
    state = phases(m, NODATA, OK, NODATA)
    assert (state.phase, state.reason) == ("inconclusive", "analysis.inconclusive_limit")


def test_consecutive_errors_fail_only_when_in_a_row_and_never_count_as_measurements():
    m = metric(count=2, consecutive_error_limit=2)
    assert phases(m, ERR, ERR, OK, ERR, ERR, OK).phase == "successful"   # never 3 in a row; 2 counted
    assert phases(m, ERR, OK).phase == "running"                          # the error did not count
    state = phases(m, OK, ERR, ERR, ERR)
    assert (state.phase, state.reason) == ("failed", "analysis.consecutive_errors")


def test_count_measurements_make_a_metric_successful():
    assert phases(metric(count=3), OK, OK).phase == "running"
    assert phases(metric(count=3), OK, OK, OK).phase == "successful"


def test_the_analysis_outcome_fail_beats_inconclusive_beats_running():
    a = Analysis(metrics=(metric(name="errors", count=2), metric(name="latency", count=2, inconclusive_limit=0)))
    assert evaluate(a, {"errors": [OK, OK], "latency": [OK, OK]}).outcome == "pass"
    assert evaluate(a, {"errors": [OK], "latency": [OK, OK]}).outcome == "running"
    unsure = evaluate(a, {"errors": [OK], "latency": [NODATA]})
    assert (unsure.outcome, unsure.reasons) == ("inconclusive", ("analysis.inconclusive_limit",))
    assert "latency: inconclusive (analysis.inconclusive_limit), last value no data [no data]" in unsure.summary()
    failed = evaluate(a, {"errors": [BAD], "latency": [NODATA]})
    assert (failed.outcome, failed.reasons) == ("fail", ("analysis.failure_limit",))
    assert "errors: failed (analysis.failure_limit), last value 0.5" in failed.summary()


def test_schedule_and_bound():
    m = metric(initial_delay_s=5, interval_s=10, failure_limit=2)
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    assert next_measurement_at(m, t0, 0) == t0 + timedelta(seconds=5)
    assert next_measurement_at(m, t0, 3) == t0 + timedelta(seconds=35)
    assert m.bound_s == 30


@pytest.mark.parametrize("kw, message", [
    ({"success_condition": None}, "needs a success_condition, a failure_condition or both"),
    ({"success_condition": "result <"}, "CEL syntax error"),
    ({"provider": "http_json"}, "needs json_path"),
    ({"json_path": "data.value"}, "json_path is for provider http_json only"),
    ({"count": 0}, "greater than or equal to 1"),
    ({"surprise": 1}, "Extra inputs are not permitted"),
])
def test_every_field_is_checked(kw, message):
    with pytest.raises(ValidationError, match=message):
        metric(**kw)
    with pytest.raises(ValidationError, match="must be unique"):
        Analysis(metrics=(metric(), metric()))
