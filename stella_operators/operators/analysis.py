"""RunAnalysisOperator: measure a metric analysis (Prometheus, HTTP/JSON) and pass, fail or ask."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import ValidationError

from stella_operators.analysis.model import Analysis
from stella_operators.hooks.metrics import PROMETHEUS_CONN_ID
from stella_operators.triggers.analysis import AnalysisTrigger

ON_INCONCLUSIVE = ("fail", "skip", "continue")


def _longest_s(analysis: Analysis) -> float:
    """The longest an analysis can run when every measurement is counted (errors add a few more)."""
    return max(m.initial_delay_s + m.interval_s * (m.count + m.consecutive_error_limit + m.inconclusive_limit)
               for m in analysis.metrics)


class RunAnalysisOperator(BaseOperator):
    """Runs an analysis; succeeds on ``pass`` (the report is the XCom return value), fails on ``fail``.

    :param analysis: the analysis (``{"metrics": [...]}``, see analysis/model.py), validated here
        so a bad config fails at DAG parse time.
    :param prometheus_conn_id: Connection of the Prometheus server.
    :param http_conn_id: optional Connection (base URL, credentials) for http_json metrics.
    :param on_inconclusive: ``fail`` (default), ``skip`` (task skipped) or ``continue`` (task
        succeeds; a downstream step reads ``outcome`` from the XCom and decides, e.g. a human).
    :param deferrable: wait in the triggerer (no worker slot) instead of in the worker.
    """

    template_fields = ("prometheus_conn_id", "http_conn_id")
    ui_color = "#eaf7ea"

    def __init__(self, *, analysis: dict[str, Any] | Analysis, prometheus_conn_id: str = PROMETHEUS_CONN_ID,
                 http_conn_id: str | None = None, on_inconclusive: str = "fail", deferrable: bool = True,
                 **kwargs: Any):
        super().__init__(**kwargs)
        try:
            self.analysis = analysis if isinstance(analysis, Analysis) else Analysis.model_validate(analysis)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'analysis'}: {e['msg']}"
                                 for e in exc.errors())
            raise ValueError(f"task {self.task_id}: invalid analysis: {problems}") from None
        if on_inconclusive not in ON_INCONCLUSIVE:
            raise ValueError(f"task {self.task_id}: on_inconclusive is one of {', '.join(ON_INCONCLUSIVE)}, "
                             f"not {on_inconclusive!r}")
        self.prometheus_conn_id = prometheus_conn_id
        self.http_conn_id = http_conn_id
        self.on_inconclusive = on_inconclusive
        self.deferrable = deferrable

    def _trigger(self, started_at: datetime, min_runtime_s: float | None = None) -> AnalysisTrigger:
        kw = {} if min_runtime_s is None else {"min_runtime_s": min_runtime_s}
        return AnalysisTrigger(analysis=self.analysis.model_dump(mode="json"), started_at=started_at.isoformat(),
                               prometheus_conn_id=self.prometheus_conn_id, http_conn_id=self.http_conn_id, **kw)

    def execute(self, context: Any) -> dict[str, Any]:
        started_at = datetime.now(UTC)
        self.log.info("analysis of %d metric(s) from %s (at most ~%.0f s)", len(self.analysis.metrics),
                      started_at.isoformat(), _longest_s(self.analysis))
        if self.deferrable:
            self.defer(trigger=self._trigger(started_at), method_name="execute_complete",
                       timeout=timedelta(seconds=_longest_s(self.analysis) * 2 + 60))
        return self.execute_complete(context, asyncio.run(self._run_here(started_at)))

    async def _run_here(self, started_at: datetime) -> dict[str, Any]:
        # The same trigger code, awaited in the worker: one implementation of the schedule.
        event: dict[str, Any] = {}
        # In the worker there is no deferral race to keep clear of: report as soon as known.
        async for e in self._trigger(started_at, min_runtime_s=0).run():
            event = e.payload
        return event

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        outcome = event.get("outcome")
        if outcome == "error":
            raise AirflowFailException(f"analysis could not run: {event.get('error')}")
        summary = event.get("summary", "")
        for metric in event.get("metrics", []):
            for i, m in enumerate(metric["measurements"], 1):
                self.log.info("%s #%d at %s: %s %s %s", metric["name"], i, m["at"], m["phase"], m["values"],
                              m["message"])
        self.log.info("analysis outcome: %s (%s)", outcome, summary)
        if outcome == "pass":
            return event
        if outcome == "fail":
            raise AirflowFailException(f"analysis failed: {summary}")
        if self.on_inconclusive == "skip":
            raise AirflowSkipException(f"analysis inconclusive: {summary}")
        if self.on_inconclusive == "fail":
            raise AirflowFailException(f"analysis inconclusive (a human must decide): {summary}")
        return event
