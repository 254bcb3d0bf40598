"""Analysis semantics, pure: samples -> measurements -> metric phases -> the analysis outcome.

One measurement (`measure`), from one sample (the provider's values, or its error):
  error          the provider failed (or a condition errored): does not count towards `count`
  inconclusive   no data (empty, or only NaN), fewer than `min_samples` data points, or both
                 conditions given and neither true
  failed         failure_condition true; or success_condition false with no failure_condition
  successful     success_condition true (and failure_condition not true); or failure_condition
                 false with no success_condition
A metric (`metric_phase`) is `failed` once more than `failure_limit` measurements failed or more
than `consecutive_error_limit` errors came in a row, `inconclusive` once more than
`inconclusive_limit` were inconclusive, `successful` after `count` counted measurements, else
`running`. The analysis (`outcome`): any metric failed -> fail; else any inconclusive ->
inconclusive (a human decides); else all successful -> pass; else running.

Condition variables (CEL): `result` (the value when there is exactly one, else the list),
`results` (list of numbers), `baseline` / `baselines` (same, from baseline_query; null/[] when none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import celpy
from celpy import celtypes

from stella_operators.analysis.model import Analysis, Metric
from stella_operators.cel import compile_expression

MeasurementPhase = Literal["successful", "failed", "inconclusive", "error"]
MetricPhase = Literal["running", "successful", "failed", "inconclusive"]
Outcome = Literal["running", "pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Sample:
    """What a provider returned for one measurement: numbers (NaN allowed), or an error."""

    values: tuple[float, ...] = ()
    baseline: tuple[float, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Measurement:
    phase: MeasurementPhase
    values: tuple[float, ...]
    message: str = ""


@dataclass(frozen=True)
class MetricState:
    name: str
    phase: MetricPhase
    reason: str = ""                # analysis.failure_limit | analysis.consecutive_errors | analysis.inconclusive_limit
    measurements: tuple[Measurement, ...] = ()


@dataclass(frozen=True)
class AnalysisOutcome:
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    metrics: tuple[MetricState, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        parts = []
        for m in self.metrics:
            last = m.measurements[-1] if m.measurements else None
            shown = ", ".join(f"{v:g}" for v in last.values) if last and last.values else "no data"
            parts.append(f"{m.name}: {m.phase}" + (f" ({m.reason})" if m.reason else "") + f", last value {shown}"
                         + (f" [{last.message}]" if last and last.message else ""))
        return "; ".join(parts)


def _cel_value(values: tuple[float, ...]) -> Any:
    as_list = celtypes.ListType([celtypes.DoubleType(v) for v in values])
    if len(values) == 1:
        return celtypes.DoubleType(values[0]), as_list
    return (as_list if values else None), as_list


def _condition(text: str, activation: dict[str, Any]) -> bool:
    result = compile_expression(text).evaluate(activation)
    if not isinstance(result, celtypes.BoolType | bool):
        raise TypeError(f"condition {text!r} must be true or false, got {result!r}")
    return bool(result)


def measure(metric: Metric, sample: Sample) -> Measurement:
    """One measurement's phase (see the module docstring)."""
    if sample.error is not None:
        return Measurement("error", (), sample.error)
    values = tuple(v for v in sample.values if not math.isnan(v))
    if not values:
        return Measurement("inconclusive", (), "no data" + (" (only NaN)" if sample.values else ""))
    if len(values) < metric.min_samples:
        return Measurement("inconclusive", values, f"not enough samples ({len(values)} < {metric.min_samples})")
    baseline = tuple(v for v in sample.baseline if not math.isnan(v))
    if metric.baseline_query and not baseline:
        return Measurement("inconclusive", values, "no baseline data")
    result, results = _cel_value(values)
    base, bases = _cel_value(baseline)
    activation = {"result": result, "results": results, "baseline": base, "baselines": bases}
    try:
        failed = metric.failure_condition is not None and _condition(metric.failure_condition, activation)
        succeeded = metric.success_condition is not None and _condition(metric.success_condition, activation)
    except (celpy.CELEvalError, TypeError) as exc:
        return Measurement("error", values, f"condition could not be evaluated: {exc}")
    if failed:
        return Measurement("failed", values, f"failure_condition {metric.failure_condition} is true")
    if metric.success_condition is None:
        return Measurement("successful", values)
    if succeeded:
        return Measurement("successful", values)
    if metric.failure_condition is None:
        return Measurement("failed", values, f"success_condition {metric.success_condition} is false")
    return Measurement("inconclusive", values, "neither condition is true")


def metric_phase(metric: Metric, measurements: list[Measurement]) -> MetricState:
    failed = inconclusive = counted = errors_in_a_row = 0
    for m in measurements:
        if m.phase == "error":
            errors_in_a_row += 1
            if errors_in_a_row > metric.consecutive_error_limit:
                return MetricState(metric.name, "failed", "analysis.consecutive_errors", tuple(measurements))
            continue
        errors_in_a_row = 0
        counted += 1
        if m.phase == "failed":
            failed += 1
            if failed > metric.failure_limit:
                return MetricState(metric.name, "failed", "analysis.failure_limit", tuple(measurements))
        elif m.phase == "inconclusive":
            inconclusive += 1
            if inconclusive > metric.inconclusive_limit:
                return MetricState(metric.name, "inconclusive", "analysis.inconclusive_limit", tuple(measurements))
    phase: MetricPhase = "successful" if counted >= metric.count else "running"
    return MetricState(metric.name, phase, "", tuple(measurements))


def outcome(states: list[MetricState]) -> AnalysisOutcome:
    failed = [s for s in states if s.phase == "failed"]
    if failed:
        return AnalysisOutcome("fail", tuple(sorted({s.reason for s in failed})), tuple(states))
    unsure = [s for s in states if s.phase == "inconclusive"]
    if unsure:
        return AnalysisOutcome("inconclusive", tuple(sorted({s.reason for s in unsure})), tuple(states))
    if all(s.phase == "successful" for s in states):
        return AnalysisOutcome("pass", (), tuple(states))
    return AnalysisOutcome("running", (), tuple(states))


def evaluate(analysis: Analysis, samples: dict[str, list[Sample]]) -> AnalysisOutcome:
    """The outcome after the samples taken so far (metric name -> samples in order)."""
    return outcome([metric_phase(m, [measure(m, s) for s in samples.get(m.name, [])]) for m in analysis.metrics])


def next_measurement_at(metric: Metric, started_at: datetime, taken: int) -> datetime:
    """When measurement number `taken` (0-based) is due: after the initial delay, one per interval."""
    return started_at + timedelta(seconds=metric.initial_delay_s + taken * metric.interval_s)
