"""Approvals through a real Airflow deployment: api-server, scheduler (LocalExecutor), triggerer
and dag-processor run as separate processes; users trigger and approve through the real REST API
with real JWTs; targets are real dockerd hosts. Nothing is mocked.

Also: the per-environment deploy lock makes a second promotion wait deferred, or refuses it.

Story (environment `stage` needs 2 approvals from release-managers, separation of duties on):
the requester's own approval is refused (403) and recorded; bob approves, twice, and counts once;
carol approves and the deployment starts; a rejection ends a run as rejected; a timeout fails
closed.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import docker
from devstack.estate_lab import HEALTH, conn_id_for
from devstack.waiting import wait_until
from tests.fixtures.approval_stack import call, ledger, run_state, ti_state, trigger, wait_run

pytestmark = pytest.mark.root
USERS = {"admin": "admin", "alice": "op", "bob": "op", "carol": "op", "dave": "op", "erin": "op"}


def estate_yaml(lab) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "{lab.registry_host}", scheme: http}}]
        approver_groups:
          - {{name: release-managers, users: [alice, bob, carol, dave]}}
        apps:
          - name: kiosk
            components:
              - name: web
                repository: {lab.repository}
                health: {{command: {json.dumps(HEALTH)}, interval_s: 0.5, timeout_s: 2, retries: 3}}
        environments:
          - name: dev
            targets: [{{name: k-dev-1, type: docker, connection: {conn_id_for("dev-1")}}}]
          - name: stage
            approvals: {{required: 2, groups: [release-managers], separation_of_duties: true, timeout_s: 600}}
            targets:
              - {{name: k-stage-1, type: docker, connection: {conn_id_for("stage-1")}}}
              - {{name: k-stage-2, type: docker, connection: {conn_id_for("stage-2")}}}
          - name: prod
            approvals: {{required: 1, groups: [release-managers], timeout_s: 6}}
            targets: [{{name: k-prod-1, type: docker, connection: {conn_id_for("dev-2")}}}]
          - name: shared
            requires: []
            lock: wait
            targets: [{{name: k-shared-1, type: docker, connection: {conn_id_for("dev-2")}}}]
          - name: strict
            requires: []
            lock: refuse
            targets: [{{name: k-strict-1, type: docker, connection: {conn_id_for("dev-2")}}}]
          - name: quick
            requires: []
            approvals: {{required: 1, groups: [release-managers], timeout_s: 600}}
            targets: [{{name: k-quick-1, type: docker, connection: {conn_id_for("dev-2")}}}]
    """)


@pytest.fixture(scope="module")
def stack(approval_stack, estate_lab):
    return approval_stack("approvals", estate_yaml(estate_lab), users=USERS, dag_id="stella_promote__kiosk__stage")


def promotion_of(stack, dag_id, run_id):
    return wait_until(lambda: ledger(stack).find_promotion_by_run(dag_id, run_id), 60, f"promotion of {run_id}")


def approve(stack, user, pid, decision="approve", comment="looks good", **extra):
    return call(stack, "POST", f"/stella/api/v1/promotions/{pid}/approvals", user,
                json={"decision": decision, "comment": comment, **extra})


def test_two_approvals_with_separation_of_duties_then_deploy(stack, estate_lab):
    digest = estate_lab.push_web("3.0.0")
    # erin cuts the release through the API server (the creator is her Airflow login)
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "release", "create", "--estate",
                          str(stack.estate_path), "--app", "kiosk", "--name", "kiosk-3.0.0", "web=3.0.0",
                          "--api-url", stack.url, "--user", "erin"],
                         env={**os.environ, **stack.env_extra, "STELLA_API_PASSWORD": stack.passwords["erin"]},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert ledger(stack).find_release("kiosk", "kiosk-3.0.0").created_by == "erin"

    run = trigger(stack, "stella_promote__kiosk__dev", "alice", release="kiosk-3.0.0", reason="dev first")
    assert wait_run(stack, "stella_promote__kiosk__dev", run) == "success"

    run = trigger(stack, "stella_promote__kiosk__stage", "alice", release="kiosk-3.0.0", reason="to stage")
    promo = promotion_of(stack, "stella_promote__kiosk__stage", run)
    wait_until(lambda: ledger(stack).get_promotion(promo.id).status == "awaiting_approval", 90, "awaiting_approval")
    # The sensor waits parked in awaiting_input (no worker slot, no triggerer). People see the request
    # in Airflow's Required Actions, but only stella-operators may answer it there.
    wait_until(lambda: ti_state(stack, "stella_promote__kiosk__stage", run, "approval") == "awaiting_input", 60,
               "awaiting_input")
    hitl = f"/api/v2/dags/stella_promote__kiosk__stage/dagRuns/{run}/taskInstances/approval/-1/hitlDetails"
    assert call(stack, "PATCH", hitl, "bob", json={"chosen_options": ["Settled"]}).status_code == 403
    assert call(stack, "PATCH", hitl, "admin", json={"chosen_options": ["Settled"]}).status_code == 403

    r = approve(stack, "alice", promo.id)               # the requester
    assert r.status_code == 403 and r.json()["refusal"] == "approval.requester_cannot_approve"
    r = approve(stack, "bob", promo.id)
    assert r.status_code == 201 and r.json()["approvals"]["needed"] == 1
    r = approve(stack, "bob", promo.id)                 # twice: still one
    assert r.status_code == 200 and r.json()["counted"] is False and r.json()["approvals"]["needed"] == 1
    r = approve(stack, "carol", promo.id, content_hash="sha256:" + "0" * 64)  # saw other digests
    assert r.status_code == 409 and r.json()["refusal"] == "approval.bound_to_other_release"
    time.sleep(3)
    assert ti_state(stack, "stella_promote__kiosk__stage", run, "deploy") is None  # not started
    detail = call(stack, "GET", f"/stella/api/v1/promotions/{promo.id}", "erin").json()
    assert "waiting for 1 more approval(s)" in detail["why"]["text"]
    assert "approved so far by bob" in detail["why"]["text"]

    r = approve(stack, "carol", promo.id, content_hash=ledger(stack).get_release(promo.release_id).content_hash)
    assert r.status_code == 201
    # The approval completing the quorum settled the promotion in the same transaction, and says so.
    assert r.json()["promotion_status"] == "approved" and r.json()["approvals"]["status"] == "approved"
    r = approve(stack, "dave", promo.id)                # after it settled: refused, recorded, told why
    assert r.status_code == 409 and r.json()["refusal"] == "approval.closed" and r.json()["counted"] is False
    assert wait_run(stack, "stella_promote__kiosk__stage", run) == "success"
    attempts = [(a.approver, a.counted, a.refusal) for a in ledger(stack).approvals_for(promo.id)]
    assert attempts == [("alice", False, "approval.requester_cannot_approve"), ("bob", True, None),
                        ("bob", False, "approval.duplicate"), ("carol", False, "approval.bound_to_other_release"),
                        ("carol", True, None), ("dave", False, "approval.closed")]
    for target in ("stage-1", "stage-2"):
        client = docker.APIClient(base_url=estate_lab.hosts[target].engine_url, version="auto")
        [c] = client.containers(filters={"label": "stella.app=kiosk"})
        assert client.inspect_image(c["ImageID"])["RepoDigests"][0].endswith(digest)
    approvals_ev = [e for e in ledger(stack).evidence_for(promotion_id=promo.id) if e.type == "approval"]
    assert sorted(e.content["approver"] for e in approvals_ev) == ["bob", "carol"]


def test_an_approval_right_after_the_wait_began_is_never_lost_or_failed(stack):
    """Airflow 3.3 can fail a task that is resumed within seconds of parking (the executor's event for
    the parking attempt comes late: apache/airflow#71580, #72716). An approval given before the
    sensor parks, or 0 / 0.5 / 1 s after, must deploy on the first try of the approval task, with no
    failed or retried attempt. (How fast: benchmarks/approval_latency.py, not a timed test.)"""
    dag = "stella_promote__kiosk__quick"
    for delay in (None, 0.0, 0.5, 1.0):   # None: as soon as the promotion awaits approval
        run = trigger(stack, dag, "alice", release="kiosk-3.0.0", reason=f"quick {delay}")
        promo = promotion_of(stack, dag, run)
        wait_until(lambda p=promo.id: ledger(stack).get_promotion(p).status == "awaiting_approval", 90,
                   "awaiting_approval", every=0.05)
        if delay is not None:
            wait_until(lambda r=run: ti_state(stack, dag, r, "approval") == "awaiting_input", 60, "parked",
                       every=0.05)
            time.sleep(delay)
        r = approve(stack, "bob", promo.id)
        assert r.status_code == 201 and r.json()["promotion_status"] == "approved", r.text
        assert wait_run(stack, dag, run) == "success", f"approved {delay} s after parking"
        tries = call(stack, "GET", f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approval/tries", "admin").json()
        assert [(t["try_number"], t["state"]) for t in tries["task_instances"]] == [(1, "success")], \
            f"approved {delay} s after parking: {tries}"
        assert ledger(stack).get_promotion(promo.id).status == "deployed"


def test_rejection_ends_the_run_as_rejected(stack):
    run = trigger(stack, "stella_promote__kiosk__stage", "alice", release="kiosk-3.0.0", reason="again")
    promo = promotion_of(stack, "stella_promote__kiosk__stage", run)
    wait_until(lambda: ledger(stack).get_promotion(promo.id).status == "awaiting_approval", 90, "awaiting_approval")
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "approve", promo.id, "--reject",
                          "-m", "not during the sale", "--api-url", stack.url, "--user", "dave"],
                         env={**os.environ, "STELLA_API_PASSWORD": stack.passwords["dave"]},
                         capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and lines[-1].startswith("counted; approvals rejected"), out.stdout + out.stderr
    # what was decided on is shown first, and the decision was bound to it (content hash sent)
    release = ledger(stack).get_release(promo.release_id)
    assert lines[0] == (f"Rejecting kiosk -> stage: release kiosk-3.0.0 (content hash {release.content_hash}), "
                        "requested by alice: again")
    assert lines[1] == f"  web: 3.0.0 {release.components[0].ref}"
    assert wait_run(stack, "stella_promote__kiosk__stage", run) == "failed"
    assert ledger(stack).get_promotion(promo.id).status == "rejected"
    assert ti_state(stack, "stella_promote__kiosk__stage", run, "deploy") == "upstream_failed"
    r = approve(stack, "bob", promo.id)                 # too late: the rejection settled it
    assert r.status_code == 409 and r.json()["refusal"] == "approval.closed"
    assert r.json()["promotion_status"] == "rejected" and "not awaiting approval" in r.json()["detail"]


def test_approval_timeout_fails_closed(stack):
    run = trigger(stack, "stella_promote__kiosk__prod", "alice", release="kiosk-3.0.0", reason="prod")
    promo = promotion_of(stack, "stella_promote__kiosk__prod", run)
    assert wait_run(stack, "stella_promote__kiosk__prod", run, timeout_s=90) == "failed"
    assert ledger(stack).get_promotion(promo.id).status == "failed"
    why = call(stack, "GET", f"/stella/api/v1/promotions/{promo.id}", "erin").json()["why"]
    assert why["ended"]["detail"]["reason"] == "approval.timeout"
    # The timeout is a decision too: signed, naming who had approved and how many were missing.
    [record] = [e for e in ledger(stack).evidence_for(promotion_id=promo.id) if e.type == "approval"]
    assert record.content["decision"] == "timeout" and record.content["needed"] == 1
    assert why["ended"]["detail"]["evidence_id"] == record.id
    assert ti_state(stack, "stella_promote__kiosk__prod", run, "deploy") == "upstream_failed"


def test_environment_lock_waits_deferred_then_deploys(stack, estate_lab):
    led = ledger(stack)
    release = led.find_release("kiosk", "kiosk-3.0.0")
    # another promotion holds the environment's deploy lock, as a deployment in progress would
    holder = led.create_promotion(app="kiosk", environment="shared", release_id=release.id, requested_by="ops")
    assert led.acquire_deploy_lock("kiosk", "shared", holder.id, "test").acquired
    run = trigger(stack, "stella_promote__kiosk__shared", "alice", release="kiosk-3.0.0", reason="wait for it")
    wait_until(lambda: ti_state(stack, "stella_promote__kiosk__shared", run, "deploy") == "deferred", 90,
               "deploy to wait deferred for the lock")
    time.sleep(2)
    assert run_state(stack, "stella_promote__kiosk__shared", run) == "running"
    assert led.release_deploy_lock("kiosk", "shared", holder.id)
    assert wait_run(stack, "stella_promote__kiosk__shared", run) == "success"
    assert led.deploy_lock("kiosk", "shared") is None


def test_environment_lock_refuses_when_configured(stack, estate_lab):
    led = ledger(stack)
    release = led.find_release("kiosk", "kiosk-3.0.0")
    holder = led.create_promotion(app="kiosk", environment="strict", release_id=release.id, requested_by="ops")
    assert led.acquire_deploy_lock("kiosk", "strict", holder.id, "test").acquired
    client = docker.APIClient(base_url=estate_lab.hosts["dev-2"].engine_url, version="auto")
    before = sorted(c["Id"] for c in client.containers(all=True))
    run = trigger(stack, "stella_promote__kiosk__strict", "alice", release="kiosk-3.0.0", reason="no waiting")
    assert wait_run(stack, "stella_promote__kiosk__strict", run) == "failed"
    promo = led.find_promotion_by_run("stella_promote__kiosk__strict", run)
    assert promo.status == "failed"
    why = call(stack, "GET", f"/stella/api/v1/promotions/{promo.id}", "erin").json()["why"]
    assert why["ended"]["detail"] == {"reason": "lock.held", "holder": holder.id}
    assert sorted(c["Id"] for c in client.containers(all=True)) == before   # nothing touched
    assert led.deploy_lock("kiosk", "strict").promotion_id == holder.id
    # the refusal left an audit event and an evidence record
    assert "lock.refused" in [e.action for e in led.audit_events(f"promotion:{promo.id}")]
    assert [e.content["reason"] for e in led.evidence_for(promotion_id=promo.id)
            if e.content.get("status") == "not_started"] == ["lock.held"]


def test_release_board_and_pages_behind_airflow_auth(stack):
    board = call(stack, "GET", "/stella/api/v1/board", "erin").json()
    cell = board["deployed"]["kiosk"]["stage"]
    assert cell["name"] == "kiosk-3.0.0" and cell["components"][0]["ref"].startswith("10.202.0.1:5000/demo/web@sha256:")
    statuses = {(p["environment"], p["status"]) for p in board["timeline"]}
    assert {("stage", "deployed"), ("stage", "rejected"), ("prod", "failed"), ("strict", "failed")} <= statuses
    deployed = next(p for p in board["timeline"] if p["environment"] == "stage" and p["status"] == "deployed")
    assert {e["type"] for e in deployed["evidence"]} >= {"gate_decision", "approval", "deployment"}
    ev = call(stack, "GET", f"/stella/api/v1/evidence/{deployed['evidence'][0]['id']}", "erin")
    assert ev.status_code == 200 and "attachment" in ev.headers["content-disposition"]
    for page in ("/stella/ui/releases", "/stella/ui/approvals"):
        assert call(stack, "GET", page, "erin").status_code == 200
        assert stack.client.get(page).status_code == 401          # no Airflow login, no page
    assert stack.client.get("/stella/api/v1/board").status_code == 401
    # the plugin's views are listed in Airflow's own UI navigation
    plugins = call(stack, "GET", "/api/v2/plugins", "admin").json()["plugins"]
    views = [v["name"] for p in plugins if p["name"] == "stella_operators" for v in p["external_views"]]
    assert views == ["Stella releases", "Stella approvals"]
    # a browser (cookie auth) may not POST without our header: no cross-site approvals
    r = stack.client.post("/stella/api/v1/promotions/x/approvals", cookies={"_token": stack.tokens["bob"]},
                          json={"decision": "approve"})
    assert r.status_code == 403 and "X-Requested-With" in r.text
