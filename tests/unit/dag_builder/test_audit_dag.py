"""`stella_audit_checkpoint`: the estate's DAG files carry one audit checkpoint DAG (shard 0), on the
interval STELLA_AUDIT_CHECKPOINT_EVERY_MIN sets (0: none), built alone at its own task start."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stella_operators.dag_builder.audit_dag import AUDIT_CHECKPOINT_DAG_ID
from stella_operators.dag_builder.builder import build_estate_dags
from tests.unit.dag_builder.test_operations_dags import ESTATE


@pytest.fixture()
def estate(tmp_path):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    return path


def test_one_checkpoint_dag_in_shard_zero_on_the_configured_interval(estate, monkeypatch):
    monkeypatch.setenv("STELLA_AUDIT_CHECKPOINT_EVERY_MIN", "15")
    dag = build_estate_dags(estate, shard=0, shards=2)[AUDIT_CHECKPOINT_DAG_ID]
    assert AUDIT_CHECKPOINT_DAG_ID not in build_estate_dags(estate, shard=1, shards=2)
    assert dag.timetable.delta == timedelta(minutes=15)
    assert [t.task_id for t in dag.tasks] == ["checkpoint"] and dag.max_active_runs == 1


def test_zero_minutes_turns_it_off_and_a_typo_is_a_clear_error(estate, monkeypatch):
    monkeypatch.setenv("STELLA_AUDIT_CHECKPOINT_EVERY_MIN", "0")
    assert AUDIT_CHECKPOINT_DAG_ID not in build_estate_dags(estate)
    monkeypatch.setenv("STELLA_AUDIT_CHECKPOINT_EVERY_MIN", "15m")
    with pytest.raises(ValueError, match="STELLA_AUDIT_CHECKPOINT_EVERY_MIN='15m': expected a whole number"):
        build_estate_dags(estate)


def test_its_task_start_builds_only_it(estate, monkeypatch):
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", AUDIT_CHECKPOINT_DAG_ID)
    assert list(build_estate_dags(estate)) == [AUDIT_CHECKPOINT_DAG_ID]
