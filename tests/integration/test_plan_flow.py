"""The plan is shown before it is applied, through a real Airflow deployment (api-server,
scheduler, triggerer, dag-processor as separate processes, real JWTs) and real dockerd hosts in
network namespaces. Nothing is mocked.

Story (`stage`: 1 approval from release-managers, two hosts):
- kiosk 5.0.0 is deployed; kiosk 6.0.0 waits for approval. REST, the Approvals page's data,
  "why?" and `stella why` show per host `5.0.0's digest -> 6.0.0's digest, replaced`, read from the
  hosts; the plan shown when the wait began is in the ledger.
- An approval sent with a stale plan hash is refused (409, the plan changed: reload) and changes
  nothing; `stella approve` shows the plan and binds the approval to it; its evidence holds the plan.
- While the deployment waits for the deploy lock, someone stops the container on one host by
  hand: the deployment stops before changing anything (promotion failed, `plan.changed`, both plans
  in the evidence); requested again, the new plan (start on that host) is approved and deployed.
`edge` has a target that listens nowhere: its row says it could not be read, and it can still be
approved (the plan records it as unknown).
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
from tests.fixtures.approval_stack import call, ledger, ti_state, trigger, wait_run

pytestmark = pytest.mark.root
USERS = {"admin": "admin", "alice": "op", "bob": "op", "carol": "op"}
DAG = "stella_promote__kiosk__stage"


def estate_yaml(lab) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "{lab.registry_host}", scheme: http}}]
        approver_groups:
          - {{name: release-managers, users: [bob, carol]}}
        apps:
          - name: kiosk
            components:
              - name: web
                repository: {lab.repository}
                health: {{command: {json.dumps(HEALTH)}, interval_s: 0.5, timeout_s: 2, retries: 3}}
        environments:
          - name: stage
            requires: []
            approvals: {{required: 1, groups: [release-managers], timeout_s: 600}}
            targets:
              - {{name: p-stage-1, type: docker, connection: {conn_id_for("stage-1")}}}
              - {{name: p-stage-2, type: docker, connection: {conn_id_for("stage-2")}}}
          - name: edge
            requires: []
            approvals: {{required: 1, groups: [release-managers], timeout_s: 600}}
            targets:
              - {{name: p-edge-1, type: docker, connection: {conn_id_for("dev-1")}}}
              - {{name: p-ghost, type: docker, connection: stella_ghost}}
    """)


@pytest.fixture(scope="module")
def stack(approval_stack, estate_lab):
    # nothing listens at p-ghost's address: reading it fails at once ("connection refused")
    ghost = json.dumps({"conn_type": "stella_docker_engine", "host": "127.0.0.1", "port": 1})
    return approval_stack("plan", estate_yaml(estate_lab), users=USERS, dag_id=DAG,
                          extra_env={"AIRFLOW_CONN_STELLA_GHOST": ghost}, http_timeout_s=60)


def waiting_promotion(stack, dag_id, release, reason):
    run = trigger(stack, dag_id, "alice", release=release, reason=reason)
    promo = wait_until(lambda: ledger(stack).find_promotion_by_run(dag_id, run), 60, f"promotion of {run}")
    wait_until(lambda: ledger(stack).get_promotion(promo.id).status == "awaiting_approval", 90, "awaiting_approval")
    return run, promo


def approve(stack, user, pid, **extra):
    return call(stack, "POST", f"/stella/api/v1/promotions/{pid}/approvals", user,
                json={"decision": "approve", "comment": "ok", **extra})


def cli(stack, *args, user="bob"):
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", *args],
                          env={**os.environ, **stack.env_extra, "STELLA_API_PASSWORD": stack.passwords[user]},
                          capture_output=True, text=True, timeout=120)


def web_container(estate_lab, host):
    client = docker.APIClient(base_url=estate_lab.hosts[host].engine_url, version="auto")
    return client, client.containers(filters={"label": ["stella.app=kiosk", "stella.component=web"]})


def test_the_plan_is_shown_bound_to_the_approval_and_rechecked_at_deploy(stack, estate_lab):
    old = estate_lab.push_web("5.0.0")
    new = estate_lab.push_web("6.0.0")
    for tag in ("5.0.0", "6.0.0"):
        out = cli(stack, "release", "create", "--estate", str(stack.estate_path), "--app", "kiosk",
                  "--name", f"kiosk-{tag}", f"web={tag}", "--api-url", stack.url, "--user", "alice", user="alice")
        assert out.returncode == 0, out.stderr
    run, promo = waiting_promotion(stack, DAG, "kiosk-5.0.0", "first")
    assert approve(stack, "bob", promo.id).status_code == 201
    assert wait_run(stack, DAG, run) == "success"

    run, promo = waiting_promotion(stack, DAG, "kiosk-6.0.0", "next")
    # REST: per target, current -> new digest and what happens to the container, read from the hosts.
    plan = call(stack, "GET", f"/stella/api/v1/promotions/{promo.id}", "carol").json()["plan"]
    rows = [(t["target"], c["current"], c["new"], c["action"]) for t in plan["targets"] for c in t["changes"]]
    assert rows == [("p-stage-1", old, new, "replace"), ("p-stage-2", old, new, "replace")]
    assert plan["targets"][0]["sentences"] == [f"web: {old[:19]} -> {new[:19]}, replaced"]
    # The Approvals page's data and "why?" show the same plan.
    [card] = call(stack, "GET", f"/stella/api/v1/ui/approvals?promotion={promo.id}", "carol").json()["promotions"]
    assert card["plan"]["hash"] == plan["hash"]
    why = call(stack, "GET", f"/stella/api/v1/ui/why/{promo.id}", "carol").json()["sentences"]
    assert f"If it is deployed now (plan {plan['hash']}):" in why
    assert f"p-stage-2: web: {old[:19]} -> {new[:19]}, replaced" in why
    out = cli(stack, "why", promo.id, "--estate", str(stack.estate_path))
    assert out.returncode == 0, out.stderr
    assert f"  p-stage-1: web: {old[:19]} -> {new[:19]}, replaced" in out.stdout.splitlines()
    # The plan as it stood when the wait began is in the ledger.
    shown = wait_until(lambda: call(stack, "GET", f"/stella/api/v1/promotions/{promo.id}/plan", "carol")
                       .json()["shown_when_waiting"], 30, "the plan shown when the wait began")
    assert shown["hash"] == plan["hash"]

    # A stale plan hash: refused, recorded, nothing settled.
    r = approve(stack, "carol", promo.id, plan_hash="sha256:" + "0" * 64)
    assert r.status_code == 409 and r.json()["refusal"] == "approval.plan_changed", r.text
    assert "the plan changed" in r.json()["detail"] and r.json()["plan"]["hash"] == plan["hash"]
    assert ledger(stack).get_promotion(promo.id).status == "awaiting_approval"

    # Another deployment holds the lock: the approved deployment will wait for it.
    led = ledger(stack)
    holder = led.create_promotion(app="kiosk", environment="stage", release_id=promo.release_id, requested_by="ops")
    assert led.acquire_deploy_lock("kiosk", "stage", holder.id, "test").acquired
    out = cli(stack, "approve", promo.id, "--api-url", stack.url, "--user", "bob")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"What will change (read from the hosts now; plan {plan['hash']}):" in out.stdout
    assert f"  p-stage-2: web: {old[:19]} -> {new[:19]}, replaced" in out.stdout
    [counted] = [a for a in led.approvals_for(promo.id) if a.counted]
    assert counted.plan_hash == plan["hash"]
    assert led.get_evidence(counted.evidence_id).content["plan"]["targets"] == plan["targets"]
    wait_until(lambda: ti_state(stack, DAG, run, "deploy") == "deferred", 90, "deploy to wait for the lock")

    # Changed by hand between approval and deployment: someone stops the web container on stage-2.
    client, [c] = web_container(estate_lab, "stage-2")
    client.stop(c["Id"], timeout=2)
    assert led.release_deploy_lock("kiosk", "stage", holder.id)
    assert wait_run(stack, DAG, run) == "failed"
    promo_after = led.get_promotion(promo.id)
    assert promo_after.status == "failed"
    why = call(stack, "GET", f"/stella/api/v1/ui/why/{promo.id}", "alice").json()["sentences"]
    assert (f"It was not deployed: what it would change in stage is no longer what was approved (p-stage-2: web ran "
            f"{old} when approved, runs nothing now (approved by bob)). Nothing was changed; request it again and "
            "the approvers will see the new plan.") in why
    [ev] = [e for e in led.evidence_for(promotion_id=promo.id) if e.content.get("status") == "not_started"]
    assert ev.content["reason"] == "plan.changed"
    assert ev.content["approved_plans"][0]["plan"]["hash"] == plan["hash"]
    assert ev.content["live_plan"]["targets"][1]["changes"][0] == {"component": "web", "current": None,
                                                                   "new": new, "action": "start"}
    # Nothing was deployed: stage-1 still runs 5.0.0, stage-2's container is still stopped.
    client1, [c1] = web_container(estate_lab, "stage-1")
    assert client1.inspect_image(c1["ImageID"])["RepoDigests"][0].endswith(old)
    assert web_container(estate_lab, "stage-2")[1] == []

    # Asked again: the new plan starts web on stage-2; approved, it deploys.
    run, again = waiting_promotion(stack, DAG, "kiosk-6.0.0", "again, after the hand change")
    plan = call(stack, "GET", f"/stella/api/v1/promotions/{again.id}", "carol").json()["plan"]
    assert [c["action"] for t in plan["targets"] for c in t["changes"]] == ["replace", "start"]
    assert approve(stack, "carol", again.id, plan_hash=plan["hash"]).status_code == 201
    assert wait_run(stack, DAG, run) == "success"
    for host in ("stage-1", "stage-2"):
        client, [c] = web_container(estate_lab, host)
        assert client.inspect_image(c["ImageID"])["RepoDigests"][0].endswith(new)


def test_a_host_that_cannot_be_read_is_shown_and_may_be_approved(stack):
    run, promo = waiting_promotion(stack, "stella_promote__kiosk__edge", "kiosk-6.0.0", "edge")
    t0 = time.monotonic()
    [card] = call(stack, "GET", f"/stella/api/v1/ui/approvals?promotion={promo.id}", "bob").json()["promotions"]
    assert time.monotonic() - t0 < 15
    assert card["plan"]["unknown"] == ["p-ghost"]
    ghost = card["plan"]["targets"][1]
    assert ghost["unknown"] is True and ghost["sentences"][0].startswith("could not read host p-ghost: ")
    # p-edge-1 is a lab host the session shares: it may already run kiosk from another test's deployment
    assert card["plan"]["targets"][0]["changes"][0]["action"] in ("start", "replace")
    assert card["plan"]["targets"][0].get("unknown") is not True
    r = approve(stack, "bob", promo.id, plan_hash=card["plan"]["hash"])
    assert r.status_code == 201, r.text
    record = ledger(stack).get_evidence(r.json()["evidence_id"])
    assert record.content["plan"]["unknown"] == ["p-ghost"]
    # The deployment reads every host again: p-ghost still cannot be read, so nothing is deployed.
    assert wait_run(stack, "stella_promote__kiosk__edge", run) == "failed"
    assert ledger(stack).get_promotion(promo.id).status == "failed"
