"""The rollback and drift DAGs the estate generates per app and environment: their forms, their
schedule (from the environment's `drift:` block), and the path an emergency takes."""

from __future__ import annotations

import copy
import textwrap

import pytest

from stella_operators.dag_builder.builder import app_of_dag_id, build_estate_dags, drift_dag_id, rollback_dag_id
from stella_operators.estate.loader import EstateError, load_estate
from tests.unit.dag_builder.estates import SHOP_DEV

ESTATE = textwrap.dedent(SHOP_DEV + """\
      - name: prod
        drift: {schedule: "*/15 * * * *", timezone: Europe/Berlin}
        targets: [{name: prod-1, type: docker, connection: c_prod}]
""")


def test_each_app_and_environment_gets_a_rollback_and_a_drift_dag(dags):
    for env in ("dev", "prod"):
        assert rollback_dag_id("shop", env) in dags and drift_dag_id("shop", env) in dags
    assert app_of_dag_id("stella_rollback__my-app__prod-eu") == "my-app"
    assert app_of_dag_id("stella_drift__shop__dev") == "shop"


def test_drift_runs_on_the_environments_schedule_in_its_time_zone_or_only_when_triggered(dags):
    prod = dags[drift_dag_id("shop", "prod")]
    assert (type(prod.timetable).__name__, prod.timetable.expression) == ("CronTriggerTimetable", "*/15 * * * *")
    assert str(prod.timetable.timezone) == "Europe/Berlin"
    assert type(dags[drift_dag_id("shop", "dev")].timetable).__name__ == "NullTimetable"
    assert prod.max_active_runs == 1


def test_rollback_form_needs_only_a_reason_and_refuses_a_blank_one(dags):
    from airflow.sdk.definitions.param import ParamValidationError

    dag = dags[rollback_dag_id("shop", "prod")]
    params = copy.deepcopy(dag.params)
    params["reason"] = "bad release"
    assert params.validate() == {"release": None, "reason": "bad release", "emergency": False}
    with pytest.raises(ParamValidationError, match="reason"):
        params["reason"] = "   "


def test_rollback_goes_through_gates_and_approval_or_the_emergency_path_to_the_same_deploy(dags):
    dag = dags[rollback_dag_id("shop", "prod")]
    assert dag.get_task("path").downstream_task_ids == {"gates", "emergency"}
    assert dag.get_task("deploy").upstream_task_ids == {"approval", "emergency"}
    assert dag.get_task("deploy").trigger_rule == "none_failed_min_one_success"
    # evidence is sealed whatever happened before it; no Asset, so nothing downstream auto-promotes
    assert dag.get_task("evidence").trigger_rule == "all_done"
    assert dag.get_task("verify").outlets == []


@pytest.mark.parametrize("drift, problem", [
    ('{schedule: "every 15 minutes"}', "schedule"),
    ('{schedule: "*/15 * * * *", timezone: Mars/Olympus}', "unknown time zone 'Mars/Olympus'"),
    ('{schedule: "*/15 * * * *", every: 5}', "every"),
])
def test_a_bad_drift_block_is_an_estate_error(tmp_path, drift, problem):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE.replace('{schedule: "*/15 * * * *", timezone: Europe/Berlin}', drift))
    with pytest.raises(EstateError, match="drift") as exc:
        load_estate(path)
    assert problem in str(exc.value)


@pytest.mark.parametrize("dag_id", ["stella_rollback__shop__prod", "stella_drift__shop__dev"])
def test_a_task_start_builds_only_its_rollback_or_drift_dag(tmp_path, monkeypatch, dag_id):
    path = tmp_path / "estate.yaml"
    path.write_text(ESTATE)
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", dag_id)
    assert list(build_estate_dags(path)) == [dag_id]
