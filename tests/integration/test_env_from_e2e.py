"""env_from end to end through real Airflow: the estate names an Airflow Connection and Variable,
the deploy task resolves them (airflow.sdk), the container gets the values -- and the estate file,
the task logs, XCom, the ledger (evidence, deployment logs, audit), the sticker and the container
labels do not. Real DagBag over the shipped DAG file, `dag.test()`, real dockerd hosts of the
10.200.0 lab (tests/fixtures/docker_peer.py), real registry.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import docker
from devstack.keys import evidence_key_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root

DB_PASSWORD = "conn-pw-7d41e9b2"
API_KEY = "var-key-c03a55f1"
APP = "vaultshop"


@pytest.fixture(scope="module")
def world(docker_hosts, lab_registry, lab_web_image, tmp_path_factory, airflow_db):
    digest = lab_web_image("stella/vaultshop", "1.0.0", version="1.0.0")
    path = tmp_path_factory.mktemp("env-from") / "estate.yaml"
    targets = "\n".join(f"      - {{name: vault-{h.name}, type: docker, connection: stella_it_{h.name}}}"
                        for h in docker_hosts)
    path.write_text(f"""
version: 1
registries: [{{host: "{lab_registry.host_port}", scheme: http}}]
apps:
  - name: {APP}
    components:
      - name: web
        repository: {lab_registry.host_port}/stella/vaultshop
        env: {{APP_ENV: it}}
        env_from:
          DB_PASSWORD: {{connection: vaultshop_db, field: password}}
          API_KEY: {{variable: vaultshop_api_key}}
        health:
          command: [wget, -q, -O, /dev/null, "http://127.0.0.1:8080/health"]
          interval_s: 0.5
environments:
  - name: it
    targets:
{targets}
    health_timeout_s: 20
""")
    mp = pytest.MonkeyPatch()
    mp.setenv("STELLA_ESTATE", str(path))
    for k, v in evidence_key_env(tmp_path_factory.mktemp("evidence")).items():
        mp.setenv(k, v)
    for h in docker_hosts:
        mp.setenv(f"AIRFLOW_CONN_STELLA_IT_{h.name.upper()}",
                  json.dumps({"conn_type": "stella_docker_engine", "host": h.ip, "port": 2375}))
    mp.setenv("AIRFLOW_CONN_VAULTSHOP_DB", json.dumps({"conn_type": "postgres", "host": "db", "login": "shop",
                                                       "password": DB_PASSWORD}))
    mp.setenv("AIRFLOW_VAR_VAULTSHOP_API_KEY", API_KEY)
    try:
        yield {"estate": path, "digest": digest}
    finally:
        mp.undo()
        for h in docker_hosts:
            client = docker.APIClient(base_url=h.engine_url, timeout=60)
            for c in client.containers(all=True, filters={"label": f"stella.app={APP}"}):
                client.remove_container(c["Id"], force=True)
            client.close()


def xcom_values(dag_ids: list[str]) -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(XComModel).where(XComModel.dag_id.in_(dag_ids))).all()
        return json.dumps([(r.dag_id, r.task_id, r.key, r.value) for r in rows], default=str)


def test_env_from_values_reach_the_container_and_nothing_else(world, docker_hosts, caplog, capfd):
    from airflow.dag_processing.dagbag import DagBag

    from stella_operators.hooks.ledger import LedgerHook

    caplog.set_level(logging.DEBUG)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    release_dag, promote_dag = f"stella_release__{APP}", f"stella_promote__{APP}__it"
    assert bag.get_dag(release_dag).test(run_conf={"name": f"{APP}-1", "web": "1.0.0"}).state == "success"
    dr = bag.get_dag(promote_dag).test(run_conf={"release": f"{APP}-1", "reason": "env_from e2e"})
    assert dr.state == "success"

    # the container has the values
    for h in docker_hosts:
        client = docker.APIClient(base_url=h.engine_url, timeout=60)
        (c,) = client.containers(filters={"label": f"stella.app={APP}"})
        info = client.inspect_container(c["Id"])
        assert f"DB_PASSWORD={DB_PASSWORD}" in info["Config"]["Env"]
        assert f"API_KEY={API_KEY}" in info["Config"]["Env"]
        # ... the labels (with the sticker) and the sticker file do not
        stream, _ = client.get_archive(c["Id"], "/stella.version.json")
        sticker = b"".join(stream).decode(errors="replace")
        assert "stella.version.json" in json.dumps(info["Config"]["Labels"]) and '"release_name"' in sticker
        for secret in (DB_PASSWORD, API_KEY):
            assert secret not in json.dumps(info["Config"]["Labels"]) and secret not in sticker
        client.close()

    # nor the estate file, the logs of both runs, XCom, or anything in the ledger
    ledger = LedgerHook().get_conn()
    promo = ledger.latest_promotion(APP, "it")
    assert promo.status == "deployed"
    evidence = json.dumps([r.to_file_json() for r in ledger.evidence_for(promotion_id=promo.id)])
    deployments = json.dumps([{"targets": [(t.target, t.log, t.timings) for t in d.targets], "error": d.error}
                              for d in ledger.deployments_for(promo.id)], default=str)
    out, err = capfd.readouterr()
    logs = caplog.text + out + err
    assert "env var(s)" in logs  # the deploy log was captured (it says how many, never which values)
    xcoms = xcom_values([release_dag, promote_dag])
    assert promo.id in xcoms
    assert "env var(s)" in deployments
    audit = "\n".join(repr(e) for e in ledger.audit_events())
    for secret in (DB_PASSWORD, API_KEY):
        for where, text in {"estate": world["estate"].read_text(), "logs": logs, "xcom": xcoms,
                            "evidence": evidence, "deployment records": deployments, "audit": audit}.items():
            assert secret not in text, f"{secret} leaked into {where}"
