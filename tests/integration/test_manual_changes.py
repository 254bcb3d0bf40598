"""Manual changes to a promotion's tasks through Airflow's real REST API (in-process app, real auth,
real metadata DB; the run itself by `dag.test()` from the real DagBag): the stella listener records
who marked what, the Releases board and `why` flag it, and the ledger never counts a deploy or
verify step marked success by hand as a verified release."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "stella_promote__manual__plant"


@pytest.fixture()
def world(registry, image_factory, tmp_path, monkeypatch, airflow_api):
    from airflow.dag_processing.dagbag import DagBag

    image_factory("manual/web", "1.0.0", files={"/www/v": "manual-1"})
    estate = tmp_path / "estate.yaml"
    estate.write_text(textwrap.dedent(f"""
        registries: [{{host: "{registry.host_port}", scheme: http}}]
        apps:
          - name: manual
            components: [{{name: web, repository: "{registry.host_port}/manual/web"}}]
        environments:
          - name: plant
            requires: []
            approvals: {{required: 0}}
            targets: [{{name: manual-1, type: docker, connection: stella_undefined_host}}]
    """))
    ledger_path = tmp_path / "ledger.db"
    monkeypatch.setenv("STELLA_ESTATE", str(estate))
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(ledger_path)}))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    airflow_api.sync_dags(bag)
    assert bag.get_dag("stella_release__manual").test(run_conf={"name": "manual-1", "web": "1.0.0"}).state == "success"
    from stella_operators.hooks.ledger import _open_ledger
    from stella_operators.ledger import Ledger

    _open_ledger.cache_clear()  # the listener opens the ledger of this test's connection
    with Ledger.open(f"sqlite:///{ledger_path}") as ledger:
        yield {"bag": bag, "ledger": ledger, "api": airflow_api, "estate": estate}
    _open_ledger.cache_clear()


def test_a_deploy_marked_success_by_hand_is_recorded_flagged_and_never_counted(world):
    from stella_operators.estate.loader import load_estate
    from stella_operators.promotion.why import explain_promotion

    api, ledger = world["api"], world["ledger"]
    run = world["bag"].get_dag(DAG_ID).test(run_conf={"release": "manual-1", "reason": "plant rollout"})
    assert run.state == "failed"  # the target's connection does not exist: the deploy step failed
    promo = ledger.find_promotion_by_run(DAG_ID, run.run_id)
    before = ledger.get_promotion(promo.id).status

    for task in ("deploy", "verify"):
        r = api.request("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/{task}", user="alice",
                        json={"new_state": "success"})
        assert r.status_code == 200, r.text

    events = [e for e in ledger.audit_events(f"promotion:{promo.id}") if e.action == "override.task_state"]
    assert [(e.actor, e.detail["task_id"], e.detail["state"]) for e in events] == [
        ("alice", "deploy", "success"), ("alice", "verify", "success")]
    # Airflow now shows the run's steps green; the ledger is unmoved: nothing was deployed or verified.
    assert ledger.get_promotion(promo.id).status == before != "deployed"
    assert ledger.deployed_release("manual", "plant") is None
    assert not ledger.was_deployed("manual", "plant", promo.release_id)

    board = api.request("GET", "/stella/api/v1/board", user="bob").json()
    [row] = [p for p in board["timeline"] if p["id"] == promo.id]
    assert row["manual_changes"][0].startswith("alice marked task deploy success by hand at ")
    assert row["manual_changes"][0].endswith(f"the ledger does not count it (the promotion is {before})")
    why = explain_promotion(load_estate(world["estate"]), ledger, promo.id)["text"]
    assert "MANUAL CHANGE: alice marked task verify success by hand" in why


def test_a_task_that_ran_is_not_reported_as_a_manual_change(world):
    ledger = world["ledger"]
    run = world["bag"].get_dag(DAG_ID).test(run_conf={"release": "manual-1", "reason": "plant rollout"})
    promo = ledger.find_promotion_by_run(DAG_ID, run.run_id)
    assert not [e for e in ledger.audit_events(f"promotion:{promo.id}") if e.action == "override.task_state"]
