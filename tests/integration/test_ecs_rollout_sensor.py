"""EcsServiceRolloutSensor, run by Airflow (`dag.test()`, real metadata DB, triggers run inline),
deferring to EcsServiceRolloutTrigger, against moto's ECS server (moto_server), NOT against AWS.
The aws Connection is a real Airflow Connection whose endpoint_url points at moto."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

DAG_FILE = """
import os
from datetime import datetime, timezone
from airflow.sdk import DAG
from stella_operators.sensors.ecs import EcsServiceRolloutSensor

with DAG("t_ecs_rollout", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
    EcsServiceRolloutSensor(task_id="wait_rollout", cluster=os.environ["T_CLUSTER"], service="web",
                            task_definition=os.environ["T_TD"], aws_conn_id="moto_aws", poll_interval=0.2,
                            trigger_min_wait_s=0, timeout=30, retries=0)
"""


@pytest.fixture
def ecs_dag(moto_ecs, tmp_path, monkeypatch, airflow_db):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    monkeypatch.setenv("AIRFLOW_CONN_MOTO_AWS", json.dumps({
        "conn_type": "aws", "login": "test", "password": "test",
        "extra": {"endpoint_url": moto_ecs.url, "region_name": "eu-west-1"}}))
    ecs = boto3.client("ecs", endpoint_url=moto_ecs.url, region_name="eu-west-1", aws_access_key_id="test",
                       aws_secret_access_key="test")
    cluster = f"c-{uuid.uuid4().hex[:6]}"
    ecs.create_cluster(clusterName=cluster)
    tds = [ecs.register_task_definition(family=cluster, containerDefinitions=[
        {"name": "web", "image": f"reg.example/shop/web@sha256:{str(i) * 64}", "memory": 64}],
    )["taskDefinition"]["taskDefinitionArn"] for i in (1, 2)]
    ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=tds[1], desiredCount=2)
    monkeypatch.setenv("T_CLUSTER", cluster)

    def run(task_definition: str):
        monkeypatch.setenv("T_TD", task_definition)
        folder = tmp_path / f"dags-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        (folder / "t_ecs_rollout.py").write_text(DAG_FILE)
        bag = DagBag(dag_folder=str(folder))
        assert bag.import_errors == {}
        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)
        return bag.get_dag("t_ecs_rollout").test()

    return run, tds


def test_the_sensor_defers_and_clears_when_the_rollout_completed(ecs_dag):
    """Against moto_server, not AWS: the service's one deployment is COMPLETED on the revision."""
    run, tds = ecs_dag
    dr = run(tds[1])
    assert dr.state == "success"


def test_the_sensor_fails_when_the_service_runs_another_revision(ecs_dag):
    """Against moto_server, not AWS: waiting for a revision the service moved off (as after a
    circuit-breaker rollback) fails the task with the reason."""
    run, tds = ecs_dag
    dr = run(tds[0])
    assert dr.state == "failed"
    [ti] = dr.get_task_instances()
    assert ti.state == "failed"
