"""RunAnalysisOperator: a bad analysis or option fails when the DAG is parsed, saying which task."""

from __future__ import annotations

import pytest

from stella_operators.operators.analysis import RunAnalysisOperator

GOOD = {"metrics": [{"name": "errors", "query": "up", "success_condition": "result > 0"}]}


def test_bad_analysis_is_refused_at_parse_time():
    with pytest.raises(ValueError, match="task canary: invalid analysis: .*needs a success_condition"):
        RunAnalysisOperator(task_id="canary", analysis={"metrics": [{"name": "errors", "query": "up"}]})
    with pytest.raises(ValueError, match="on_inconclusive is one of fail, skip, continue"):
        RunAnalysisOperator(task_id="canary", analysis=GOOD, on_inconclusive="advance")


def test_outcomes_map_to_task_results():
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    op = RunAnalysisOperator(task_id="canary", analysis=GOOD, on_inconclusive="skip")
    assert op.execute_complete({}, {"outcome": "pass", "metrics": []})["outcome"] == "pass"
    with pytest.raises(AirflowFailException, match="analysis failed: errors: failed"):
        op.execute_complete({}, {"outcome": "fail", "summary": "errors: failed", "metrics": []})
    with pytest.raises(AirflowSkipException):
        op.execute_complete({}, {"outcome": "inconclusive", "metrics": []})
    with pytest.raises(AirflowFailException, match="could not run: boom"):
        op.execute_complete({}, {"outcome": "error", "error": "boom"})
    keep = RunAnalysisOperator(task_id="c2", analysis=GOOD, on_inconclusive="continue")
    assert keep.execute_complete({}, {"outcome": "inconclusive", "metrics": []})["outcome"] == "inconclusive"
