"""Asset-triggered promotions (issue 6 item 3) through a real Airflow: events posted with the real
REST API (`POST /api/v2/assets/events`), runs created by the real scheduler, the request task run
by a real worker process. Nothing is mocked.

`stage` has `auto_promote: true`: it is scheduled on dev's "verified" Asset. The event only
points at the upstream promotion; the ledger decides. A forged event (no promotion, an unknown
one, another app's, an old release) fails the request task and requests nothing; a genuine one
requests the release on behalf of the upstream promotion's requester (separation of duties holds)
and records who posted the event.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from devstack.waiting import wait_until
from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release

ROOT = Path(__file__).resolve().parents[2]
USERS = {"admin": "admin", "alice": "op", "bob": "op"}
STAGE_DAG = "stella_promote__shop__stage"
DEV_DAG = "stella_promote__shop__dev"
ESTATE = textwrap.dedent("""
    registries: [{host: "reg.local:5000", scheme: http}]
    approver_groups:
      - {name: release-managers, users: [alice, bob]}
    apps:
      - name: shop
        components: [{name: web, repository: reg.local:5000/demo/web}]
      - name: other
        components: [{name: web, repository: reg.local:5000/demo/other}]
    environments:
      - name: dev
        targets: [{name: dev-1, type: docker, connection: c_dev}]
      - name: stage
        auto_promote: true
        approvals: {required: 1, groups: [release-managers], separation_of_duties: true, timeout_s: 600}
        targets: [{name: stage-1, type: docker, connection: c_stage}]
""")


def release(ledger: Ledger, app: str, n: int) -> Release:
    rel = Release.seal(id=f"rel-{app}-{n}", app=app, name=f"{app}-1.{n}.0", created_at=datetime.now(UTC),
                       created_by="ci", components=[ComponentDigest(
                           name="web", repository=f"reg.local:5000/demo/{'web' if app == 'shop' else app}",
                           digest=f"sha256:{n:064x}")])
    return ledger.add_release(rel)


def deployed(ledger: Ledger, app: str, env: str, rel: Release, requested_by: str):
    """A promotion that went all the way (the ledger's record of a verified deployment)."""
    p = ledger.create_promotion(app=app, environment=env, release_id=rel.id, requested_by=requested_by,
                                reason="test", dag_id=f"stella_promote__{app}__{env}", run_id=f"manual__{rel.id}")
    for status in (S.EVALUATING, S.APPROVED, S.DEPLOYING, S.VERIFYING, S.DEPLOYED):
        ledger.transition(p.id, status, actor="stella")
    return ledger.get_promotion(p.id)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from devstack.airflow_stack import AirflowStack

    work = tmp_path_factory.mktemp("auto-promote")
    estate = work / "estate.yaml"
    estate.write_text(ESTATE)
    ledger_path = work / "ledger.db"
    env = {"STELLA_ESTATE": str(estate), "STELLA_HOME": str(work / "stella"),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(ledger_path)})}
    s = AirflowStack(home=work / "airflow", dags_folder=ROOT / "dags", users=USERS, env=env)
    s.start()
    try:
        s.client = httpx.Client(base_url=s.url, timeout=30)
        s.tokens = {u: s.client.post("/auth/token", json={"username": u, "password": p}).json()["access_token"]
                    for u, p in s.passwords.items()}
        s.wait_for_dag(STAGE_DAG, s.tokens["admin"])
        s.ledger = Ledger.open(f"sqlite:///{ledger_path}")
        yield s
    finally:
        s.stop()


def call(stack, method, url, user="admin", **kw):
    return stack.client.request(method, url, headers={"Authorization": f"Bearer {stack.tokens[user]}"}, **kw)




def asset_triggered_runs(stack) -> list[dict]:
    r = call(stack, "GET", f"/api/v2/dags/{STAGE_DAG}/dagRuns", params={"run_type": "asset_triggered"})
    assert r.status_code == 200, r.text
    return sorted(r.json()["dag_runs"], key=lambda d: d["run_after"])


def post_event(stack, extra: dict) -> dict:
    """Post dev's "verified" Asset event through the REST API; return the stage run the scheduler made of it."""
    before = {d["dag_run_id"] for d in asset_triggered_runs(stack)}
    assets = call(stack, "GET", "/api/v2/assets", params={"uri_pattern": "x-stella://shop/dev"}).json()["assets"]
    [asset] = [a for a in assets if a["uri"] == "x-stella://shop/dev"]
    r = call(stack, "POST", "/api/v2/assets/events", json={"asset_id": asset["id"], "extra": extra})
    assert r.status_code == 200, r.text
    run = wait_until(lambda: next((d for d in asset_triggered_runs(stack) if d["dag_run_id"] not in before), None),
                     60, "the scheduler to start stage on the event")
    url = f"/api/v2/dags/{STAGE_DAG}/dagRuns/{run['dag_run_id']}/taskInstances/request"
    run["request_state"] = wait_until(
        lambda: (st := call(stack, "GET", url).json().get("state")) in ("success", "failed") and st,
        120, "the request task to finish")
    return run


def request_log(stack, run_id: str) -> str:
    logs = list((stack.home / "logs").glob(f"dag_id={STAGE_DAG}/run_id={run_id}/task_id=request/attempt=*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


def assert_refused(stack, run: dict, *words: str) -> None:
    assert run["request_state"] == "failed", run
    assert stack.ledger.find_promotion_by_run(STAGE_DAG, run["dag_run_id"]) is None  # nothing requested
    log = request_log(stack, run["dag_run_id"])
    for w in words:
        assert w in log, f"{w!r} not in the request task's log:\n{log[-3000:]}"


def test_forged_and_genuine_asset_events(stack):
    ledger = stack.ledger
    r1, r2, other = release(ledger, "shop", 1), release(ledger, "shop", 2), release(ledger, "other", 1)
    old = deployed(ledger, "shop", "dev", r1, requested_by="alice")
    current = deployed(ledger, "shop", "dev", r2, requested_by="alice")
    foreign = deployed(ledger, "other", "dev", other, requested_by="bob")

    # An event that names a release but no promotion: what anyone allowed to post events could do.
    run = post_event(stack, {"release_id": r1.id, "release_name": r1.name})
    assert_refused(stack, run, "names no upstream promotion (extra.promotion_id) but release", "nothing was requested")
    # An unknown promotion, another app's promotion, an old release.
    assert_refused(stack, post_event(stack, {"promotion_id": "prm-made-up", "release_id": r2.id}),
                   "names promotion 'prm-made-up', which the ledger does not know")
    assert_refused(stack, post_event(stack, {"promotion_id": foreign.id, "release_id": other.id}),
                   f"names promotion {foreign.id} of app 'other', not 'shop'")
    assert_refused(stack, post_event(stack, {"promotion_id": old.id, "release_id": r1.id}),
                   f"the release dev verified last is {r2.name} ({r2.id})")
    # The right promotion with a release it did not deploy.
    assert_refused(stack, post_event(stack, {"promotion_id": current.id, "release_id": r1.id}),
                   f"says release {r1.id!r}, but promotion {current.id} deployed {r2.id!r}")

    # The genuine event: the release dev verified last, requested on behalf of its requester.
    run = post_event(stack, {"promotion_id": current.id, "release_id": r2.id, "release_name": r2.name})
    assert run["request_state"] == "success", request_log(stack, run["dag_run_id"])[-3000:]
    promo = ledger.find_promotion_by_run(STAGE_DAG, run["dag_run_id"])
    assert promo.release_id == r2.id and promo.requested_by == "alice"
    assert f"verified in dev by promotion {current.id}" in promo.reason
    events = ledger.audit_events(f"promotion:{promo.id}")
    [trigger] = [e.detail["detail"]["trigger"] for e in events
                 if e.action == "promotion.transition" and e.detail["to"] == "evaluating"]
    assert trigger["upstream_promotion"] == current.id and trigger["upstream_requested_by"] == "alice"
    assert trigger["posted_by"]["via"] == "rest_api" and trigger["posted_by"]["at"]
    # Separation of duties holds: alice asked (through dev's promotion), so she may not approve stage.
    wait_until(lambda: ledger.get_promotion(promo.id).status == S.AWAITING_APPROVAL, 90, "stage to await approval")
    r = call(stack, "POST", f"/stella/api/v1/promotions/{promo.id}/approvals", "alice",
             json={"decision": "approve", "comment": "mine"})
    assert r.status_code == 403, r.text
    r = call(stack, "POST", f"/stella/api/v1/promotions/{promo.id}/approvals", "bob",
             json={"decision": "approve", "comment": "ok"})
    assert r.status_code == 201 and r.json()["counted"], r.text
