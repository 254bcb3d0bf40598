"""Re-running the gates task of a promotion (the run cleared and run again by Airflow, real DagBag
and `dag.test()`) never changes its history: gates are evaluated once, from `evaluating`; a re-run
returns the recorded outcome, signs no second `gate_decision`, and leaves the status as it was --
even when the estate's policy would now decide differently."""

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stella_operators.approvals.policy import Approver
from stella_operators.approvals.service import approval_state, submit_approval
from stella_operators.estate.loader import load_estate
from stella_operators.evidence import SigningKey

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "stella_promote__rerun__guarded"
LATER = ("approval", "deploy", "verify")  # marked success by dag.test: we only look at request -> gates


def estate_text(registry_host: str, required: int) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "{registry_host}", scheme: http}}]
        approver_groups: [{{name: rm, users: [bob, carol]}}]
        apps:
          - name: rerun
            components: [{{name: web, repository: "{registry_host}/rerun/web"}}]
        environments:
          - name: guarded
            requires: []
            approvals: {{required: {required}, groups: [rm], timeout_s: 600}}
            gates:
              - type: policy
                rules:
                  - {{id: no-snapshots, deny_if: 'release.name.contains("snapshot")', message: "no snapshots"}}
            targets: [{{name: rerun-1, type: docker, connection: unused_rerun}}]
    """)


@pytest.fixture()
def world(registry, image_factory, tmp_path, monkeypatch, airflow_db):
    image_factory("rerun/web", "1.0.0", files={"/www/v": "rerun-1"})
    estate = tmp_path / "estate.yaml"
    estate.write_text(estate_text(registry.host_port, required=2))
    ledger_path = tmp_path / "ledger.db"
    monkeypatch.setenv("STELLA_ESTATE", str(estate))
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(ledger_path)}))
    release_dag = dagbag().get_dag("stella_release__rerun")
    for name in ("rerun-1", "rerun-snapshot-1"):
        assert release_dag.test(run_conf={"name": name, "web": "1.0.0"}).state == "success"
    from stella_operators.ledger import Ledger

    with Ledger.open(f"sqlite:///{ledger_path}") as ledger:
        yield {"estate": estate, "ledger": ledger, "registry": registry.host_port}


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def run_promote(release: str, at: datetime):
    """One Airflow run of the promote DAG; the same `at` runs the same run (same run id) again, as a
    cleared run does: every task of it executes once more."""
    dag = dagbag().get_dag(DAG_ID)
    return dag.test(logical_date=at, run_after=at, run_conf={"release": release, "reason": "re-run test"},
                    mark_success_pattern="|".join(LATER))


def history(ledger, promotion_id):
    return {"gate_decisions": [e.id for e in ledger.evidence_for(promotion_id=promotion_id)
                               if e.type == "gate_decision"],
            "verdicts": len(ledger.gate_verdicts_for(promotion_id)),
            "decision": ledger.get_promotion(promotion_id).decision,
            "status": ledger.get_promotion(promotion_id).status}


def gates_state(dr):
    return next(ti.state for ti in dr.get_task_instances() if ti.task_id == "gates")


def test_rerun_gates_keeps_an_awaiting_promotion_and_its_approval_count(world):
    ledger, at = world["ledger"], datetime.now(UTC).replace(microsecond=0)
    first = run_promote("rerun-1", at)
    promo = ledger.find_promotion_by_run(DAG_ID, first.run_id)
    assert promo.status == "awaiting_approval" and promo.decision["approvals_required"] == 2
    key = SigningKey.generate()
    estate = load_estate(world["estate"])
    assert submit_approval(estate, ledger, key, promo.id, Approver("bob"), "approve", "ok").counted
    before = history(ledger, promo.id)

    # The policy now needs no approval at all; the promotion was decided under the old one.
    world["estate"].write_text(estate_text(world["registry"], required=0))
    again = run_promote("rerun-1", at)
    assert again.run_id == first.run_id and gates_state(again) == "success"
    assert ledger.find_promotion_by_run(DAG_ID, again.run_id).id == promo.id
    after = history(ledger, promo.id)
    assert after == before                                   # no new verdicts, decision or evidence
    assert len(after["gate_decisions"]) == 1
    assert after["status"] == "awaiting_approval"
    state = approval_state(estate, ledger, promo.id)
    assert (state.approvers, state.needed) == (("bob",), 1)


def test_rerun_gates_of_a_refused_promotion_fails_again_without_a_second_decision(world):
    ledger, at = world["ledger"], datetime.now(UTC).replace(microsecond=0)
    first = run_promote("rerun-snapshot-1", at)
    assert first.state == "failed" and gates_state(first) == "failed"
    promo = ledger.find_promotion_by_run(DAG_ID, first.run_id)
    before = history(ledger, promo.id)
    assert before["status"] == "rejected" and len(before["gate_decisions"]) == 1

    # Even a policy that would now allow it: the recorded refusal stands.
    world["estate"].write_text(estate_text(world["registry"], required=0).replace("snapshot", "never-matches"))
    again = run_promote("rerun-snapshot-1", at)
    assert again.run_id == first.run_id
    assert again.state == "failed" and gates_state(again) == "failed"
    assert history(ledger, promo.id) == before
    decisions = [e for e in ledger.audit_events(f"promotion:{promo.id}") if e.action == "promotion.decision"]
    assert len(decisions) == 1
