"""Run an analysis over time: take each metric's measurements when due, stop at the first outcome.

Plain Python and async (the Airflow trigger awaits it in the triggerer; the operator's
non-deferrable mode runs it with asyncio.run). The clock, the sleep and the sampler are
parameters, so the schedule is unit-tested without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stella_operators.analysis.evaluate import AnalysisOutcome, Sample, evaluate, next_measurement_at
from stella_operators.analysis.model import Analysis
from stella_operators.analysis.providers import Sampler, finite_or_text


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AnalysisRun:
    """The outcome and when each measurement was taken (metric name -> times, in order)."""

    result: AnalysisOutcome
    taken_at: dict[str, list[datetime]]

    def report(self) -> dict[str, Any]:
        """JSON-safe: outcome, reasons, a one-line summary, and every measurement's phase, values, message, time."""
        return {
            "outcome": self.result.outcome,
            "reasons": list(self.result.reasons),
            "summary": self.result.summary(),
            "metrics": [
                {"name": m.name, "phase": m.phase, "reason": m.reason,
                 "measurements": [{"phase": x.phase, "values": [finite_or_text(v) for v in x.values],
                                   "message": x.message, "at": at.isoformat()}
                                  for x, at in zip(m.measurements, self.taken_at.get(m.name, []), strict=False)]}
                for m in self.result.metrics],
        }


async def run_analysis(analysis: Analysis, take: Sampler, started_at: datetime, *,
                       now: Callable[[], datetime] = _utcnow,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> AnalysisRun:
    """Measure every metric on its schedule (`next_measurement_at`) and evaluate after each
    measurement; return as soon as the outcome is not `running` (a failure ends it at once).

    A measurement due more than one interval ago (the run was resumed late, e.g. after a
    triggerer restart) is skipped rather than taken in a burst: bursts would measure the same
    moment several times.
    """
    samples: dict[str, list[Sample]] = {m.name: [] for m in analysis.metrics}
    taken_at: dict[str, list[datetime]] = {m.name: [] for m in analysis.metrics}
    skipped = dict.fromkeys(samples, 0)
    while True:
        result = evaluate(analysis, samples)
        if result.outcome != "running":
            return AnalysisRun(result, taken_at)
        running = [m for m, state in zip(analysis.metrics, result.metrics, strict=True) if state.phase == "running"]
        t = now()
        due: dict[str, datetime] = {}
        for m in running:
            at = next_measurement_at(m, started_at, len(samples[m.name]) + skipped[m.name])
            late = (t - at).total_seconds()
            if late > m.interval_s:
                skipped[m.name] += int(late // m.interval_s)
                at = next_measurement_at(m, started_at, len(samples[m.name]) + skipped[m.name])
            due[m.name] = at
        first = min(due.values())
        if first > t:
            await sleep((first - t).total_seconds())
            continue
        for m in running:
            if due[m.name] <= t:
                taken = now()
                samples[m.name].append(await take(m, taken))
                taken_at[m.name].append(taken)
