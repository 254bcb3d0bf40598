"""Gates in a real promotion DAG (real DagBag, `dag.test()`, real registry for the release):
a blocked promotion is rejected before anything is deployed, `stella why` explains it, `stella
replay` re-decides it identically; a freeze override by a listed user is recorded as evidence and
costs one extra approval (which, unanswered, fails closed)."""

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANS = ROOT / "tests" / "fixtures" / "scans"
FIXTURE_HEX = "bb9a421e64b5"  # the candidate digest the trivy-web-2 fixture was written for


def stella(*args, env):
    import os

    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **env})


@pytest.fixture()
def world(registry, image_factory, tmp_path, monkeypatch, airflow_db):
    digest = image_factory("gated/web", "1.0.0", files={"/www/v": "gated-1"})
    hexd = digest.split(":", 1)[1]
    reports = tmp_path / "reports"
    (reports / hexd).mkdir(parents=True)
    text = (SCANS / "trivy-web-2.json").read_text()
    words = text.replace('"', " ").replace("@sha256:", " ").split()
    full_fixture_hex = next(w for w in words if w.startswith(FIXTURE_HEX))
    (reports / hexd / "trivy.json").write_text(text.replace(full_fixture_hex, hexd))
    now = datetime.now(UTC)
    estate = tmp_path / "estate.yaml"
    estate.write_text(textwrap.dedent(f"""
        registries: [{{host: "{registry.host_port}", scheme: http}}]
        apps:
          - name: gated
            components: [{{name: web, repository: "{registry.host_port}/gated/web"}}]
        environments:
          - name: scanned
            gates:
              - {{type: security, name: scan, reports: "{reports}", max_critical: 0}}
              - type: policy
                rules:
                  - {{id: needs-clean-scan, allow_if: 'gates.scan.verdict == "pass"', message: "scan must pass"}}
            targets: [{{name: gated-1, type: docker, connection: unused_a}}]
          - name: frozen
            requires: []
            approvals: {{required: 0, timeout_s: 3}}
            gates:
              - type: freeze
                windows:
                  - name: year-end
                    kind: deny
                    timezone: UTC
                    start: "{(now - timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None).isoformat()}"
                    end: "{(now + timedelta(hours=2)).astimezone(UTC).replace(tzinfo=None).isoformat()}"
                    overriders: [dag_test]
            targets: [{{name: gated-2, type: docker, connection: unused_b}}]
    """))
    ledger_path = tmp_path / "ledger.db"
    env = {"STELLA_ESTATE": str(estate),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(ledger_path)})}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert bag.get_dag("stella_release__gated").test(run_conf={"name": "gated-1", "web": "1.0.0"}).state == "success"
    from stella_operators.ledger import Ledger

    return {"bag": bag, "env": env, "ledger": Ledger.open(f"sqlite:///{ledger_path}"), "digest": digest}


def test_security_gate_blocks_and_why_explains_and_replay_agrees(world):
    dr = world["bag"].get_dag("stella_promote__gated__scanned").test(
        run_conf={"release": "gated-1", "reason": "scan me"})
    assert dr.state == "failed"
    promo = world["ledger"].latest_promotion("gated", "scanned")
    assert promo.status == "rejected"
    verdicts = {v.gate_name: v for v, _ in world["ledger"].gate_verdicts_for(promo.id)}
    assert verdicts["upstream"].verdict == "pass"
    assert verdicts["scan"].verdict == "fail" and "security.critical_over_max" in verdicts["scan"].reasons
    assert verdicts["policy"].verdict == "fail" and "policy.needs-clean-scan" in verdicts["policy"].reasons
    assert world["ledger"].deployments_for(promo.id) == []     # nothing was deployed

    why = stella("why", promo.id, env=world["env"])
    assert why.returncode == 0, why.stderr
    assert "gate scan (security) fail: security.critical_over_max" in why.stdout
    assert "to clear:" in why.stdout
    replay = stella("replay", promo.id, env=world["env"])
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert replay.stdout.count("same:") == 3
    decision = [e for e in world["ledger"].evidence_for(promotion_id=promo.id) if e.type == "gate_decision"]
    assert len(decision) == 1 and decision[0].content["decision"]["verdict"] == "fail"


def test_missing_scan_report_fails_closed(world, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "reports" / world["digest"].split(":", 1)[1])
    dr = world["bag"].get_dag("stella_promote__gated__scanned").test(run_conf={"release": "gated-1", "reason": "x1x"})
    assert dr.state == "failed"
    promo = world["ledger"].latest_promotion("gated", "scanned")
    scan = next(v for v, _ in world["ledger"].gate_verdicts_for(promo.id) if v.gate_name == "scan")
    assert scan.reasons == ("security.report_missing",)


def test_freeze_blocks_then_listed_overrider_adds_an_approval_that_fails_closed(world):
    dag = world["bag"].get_dag("stella_promote__gated__frozen")
    assert dag.test(run_conf={"release": "gated-1", "reason": "frozen"}).state == "failed"
    ledger = world["ledger"]
    blocked = ledger.latest_promotion("gated", "frozen")
    [freeze] = [v for v, _ in ledger.gate_verdicts_for(blocked.id) if v.gate_type == "freeze"]
    assert freeze.reasons == ("freeze.window_active",) and "year-end" in freeze.message

    # `dag_test` is who Airflow says triggered a dag.test() run, and the window lists it.
    dr = dag.test(run_conf={"release": "gated-1", "reason": "hotfix",
                            "freeze_override_reason": "security hotfix for CVE"})
    assert dr.state == "failed"   # the extra approval never came: closed after the 3 s timeout
    promo = ledger.latest_promotion("gated", "frozen")
    [freeze] = [v for v, _ in ledger.gate_verdicts_for(promo.id) if v.gate_type == "freeze"]
    assert freeze.verdict == "pass" and freeze.reasons == ("freeze.overridden",)
    assert promo.decision["approvals_required"] == 1
    [override] = [e for e in ledger.evidence_for(promotion_id=promo.id) if e.type == "override"]
    assert override.content["override_by"] == "dag_test" and override.content["reason"] == "security hotfix for CVE"
    assert promo.status == "failed"
