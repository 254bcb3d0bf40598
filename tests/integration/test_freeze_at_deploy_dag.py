"""The deploy task re-checks the freeze windows, run by Airflow (`dag.test()`, real metadata DB):
a promotion that passed its gates before a window began and was approved inside it is not
deployed; the deploy-time verdict is recorded. No target is contacted (the check comes first)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import World
from tests.unit.promotion.test_freeze_at_deploy import (
    freeze_gate,
    waited_into_the_window,
)


@pytest.fixture
def frozen(tmp_path, monkeypatch, airflow_db):
    gate, now = freeze_gate(at_deploy="fail")
    world = World(tmp_path, gates=[gate])
    estate = world.estate.model_dump(mode="json", exclude_defaults=True)
    for env in estate["environments"]:
        for t in env["targets"]:
            t["type"] = "docker"  # an installed type; never reached
    estate["registries"] = [{"host": "reg.local"}]
    (tmp_path / "estate.yaml").write_text(yaml.safe_dump(estate))
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}))
    promo = waited_into_the_window(world, now)
    yield world, promo, tmp_path / "estate.yaml"
    world.ledger.close()


DAG_FILE = """
import os
from datetime import datetime, timezone
from airflow.sdk import DAG
from stella_operators.operators.promotion import DeployReleaseOperator

with DAG("t_freeze_at_deploy", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
    DeployReleaseOperator(task_id="deploy", promotion_id=os.environ["T_PROMOTION"], app="shop", environment="prod",
                          estate_path=os.environ["T_ESTATE"], retries=0)
"""


def test_deploy_task_inside_a_window_fails_and_records_the_verdict(frozen, tmp_path, monkeypatch):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    world, promo, estate_path = frozen
    monkeypatch.setenv("T_PROMOTION", promo.id)
    monkeypatch.setenv("T_ESTATE", str(estate_path))
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "t_freeze_at_deploy.py").write_text(DAG_FILE)
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag = bag.get_dag("t_freeze_at_deploy")
    dr = dag.test()
    assert dr.state == "failed"
    [ti] = dr.get_task_instances()
    assert ti.state == "failed"
    assert world.ledger.get_promotion(promo.id).status == S.FAILED
    verdicts = [(str(v.verdict), v.details.get("checked_at")) for v, _ in world.ledger.gate_verdicts_for(promo.id)
                if v.gate_type == "freeze"]
    assert verdicts == [("pass", None), ("fail", "deploy")]
    assert world.ledger.deployments_for(promo.id) == []
    assert datetime.now(UTC) - world.ledger.gate_verdicts_for(promo.id)[-1][0].evaluated_at < timedelta(minutes=5)
