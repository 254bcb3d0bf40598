"""Canary steps through a real HAProxy and, separately, a real nginx (the lab's fixture is
parametrized by router), analysed with a real Prometheus scraping two versions of
the metrics app (tests/fixtures/canary_lab.py), through the promotion services the DAG's tasks
call (deploy, then one call per step: take_step, analyse, decide):

- a healthy canary walks 10 -> 50 -> 100; at each step 200 requests through the proxy split as
  configured within +-5 %; the promotion verifies with the new group live and the old one kept;
- a canary answering 20 % errors fails its analysis at the first step and is rolled back: no
  request sent after the router took the traffic back reaches the bad version (nginx: counted
  from the moment `shift` returned, i.e. its reload confirmed -- new workers up, old ones no
  longer accepting; requests in flight on the old workers were sent before);
- through Airflow, HAProxy only (the shipped DAG file, a real DagBag, dag.test(), Airflow's own
  REST API): a canary that gets no traffic is inconclusive, its step task waits in
  `awaiting_input` with the measurements in the request, and the answer of the Airflow user
  (Roll back) is honoured and recorded with their name.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stella_operators.analysis.model import Analysis
from stella_operators.analysis.providers import Endpoint, open_sampler
from stella_operators.analysis.runner import run_analysis
from stella_operators.estate import parse_estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion import strategies
from stella_operators.promotion.canary import decide, take_step
from stella_operators.promotion.canary_progress import canary_progress
from stella_operators.promotion.service import deploy_promotion, verify_promotion
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release
from tests.fixtures.canary_lab import Responses, canary_lab, digest, get  # noqa: F401 - the fixture

APP = "shop"
T0 = datetime(2026, 11, 30, tzinfo=UTC)


def estate_text(lab) -> str:
    canary_instance = f"127.0.0.1:{lab.canary.port}"
    window = "[3s]"
    ratio = (f'sum(rate(stella_demo_errors_total{{instance="{canary_instance}"}}{window})) / '
             f'sum(rate(stella_demo_requests_total{{instance="{canary_instance}"}}{window}))')
    return f"""
version: 1
registries: [{{host: reg.local, scheme: http}}]
apps:
  - name: {APP}
    components: [{{name: web, repository: reg.local/shop/web}}]
environments:
  - name: live
    requires: []
    strategy: canary
    canary:
      router: {lab.router_block()}
      steps: [10, 50, 100]
      bake_s: 0
      ready_timeout_s: 20
      analysis:
        metrics:
          - name: error-rate
            query: '{ratio}'
            success_condition: result < 0.05
            interval_s: 1
            count: 3
            initial_delay_s: 3
            inconclusive_limit: 1     # one scrape missed on a loaded machine is not yet a verdict
    targets:
      - {{name: s1, type: docker, connection: c_s1, group: stable}}
      - {{name: c1, type: docker, connection: c_c1, group: canary}}
"""


def estate_for(lab):
    return parse_estate(estate_text(lab), source="canary-lab.yaml")


class World:
    def __init__(self, lab, tmp_path):
        self.lab = lab
        self.estate = estate_for(lab)
        self.env = self.estate.environment("live")
        self.ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        self.key = SigningKey.generate()
        self.n = 0

    def approved(self, n: int):
        self.n += 1
        rel = self.ledger.add_release(Release.seal(
            id=f"rel-{n}", app=APP, name=f"shop-{n}", created_at=T0, created_by="ci", source={},
            components=[ComponentDigest(name="web", repository="reg.local/shop/web", digest=digest(n), tag=str(n))]))
        promo = self.ledger.create_promotion(APP, "live", rel.id, "alice", "canary", "promote", f"run-{self.n}")
        for status in (S.EVALUATING, S.APPROVED):
            promo = self.ledger.transition(promo.id, status, actor="stella")
        return promo

    def analyse(self) -> dict:
        async def go():
            async with open_sampler({"prometheus": Endpoint(self.lab.prometheus.url)}) as take:
                return await run_analysis(Analysis.model_validate(self.env.canary.analysis), take,
                                          datetime.now(UTC))
        return asyncio.run(go()).report()


@pytest.fixture
def world(canary_lab, tmp_path):  # noqa: F811
    canary_lab.reset()
    w = World(canary_lab, tmp_path)
    yield w
    w.ledger.close()


def split(lab, n: int = 200) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _ in range(n):
        status, body = get(lab.port)
        version = body.rsplit(" ", 1)[-1] if status in (200, 500) else body
        counts[version] = counts.get(version, 0) + 1
    return counts


def test_a_healthy_canary_walks_10_50_100_with_the_configured_split(world):
    lab = world.lab
    promo = world.approved(2)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, lab.targets)
    assert split(lab, 50) == {"v1": 50}           # ready with 0 % of the traffic
    measured = []
    for k in range(3):
        step = take_step(world.estate, world.ledger, world.key, promo.id, k, lab.targets)
        counts = split(lab)
        share = 100 * counts.get("v2", 0) / 200
        measured.append((step.weight, share, step.distribution))
        assert abs(share - step.weight) <= 5, f"step {k + 1}: {counts} for {step.weight} %"
        with Responses(lab.port):
            report = world.analyse()
        assert report["outcome"] == "pass", report["summary"]
        decide(world.estate, world.ledger, world.key, promo.id, step, lab.targets, decision="advance",
               decided_by="stella", analysis=report)
    print(f"{lab.router_type}: measured splits (weight, share of v2 in 200 requests, router):", measured)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, lab.targets)
    assert str(world.ledger.get_promotion(promo.id).status) == "deployed"
    assert lab.stable.running == digest(1)        # kept for the switch-back window
    kinds = [str(e.type) for e in world.ledger.evidence_for(promotion_id=promo.id)]
    assert kinds.count("canary") == 3


def test_a_canary_with_20_percent_errors_is_rolled_back_at_the_first_step(world, monkeypatch):
    lab = world.lab
    back_at: list[float] = []   # the real router; notes when the traffic went back to the stable group
    router_of = strategies.router_of
    monkeypatch.setattr(strategies, "router_of", lambda env: lab.timed(router_of(env), back_at))
    promo = world.approved(3)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, lab.targets)
    step = take_step(world.estate, world.ledger, world.key, promo.id, 0, lab.targets)
    assert step.weight == 10
    with Responses(lab.port) as traffic:
        report = world.analyse()
        assert report["outcome"] == "fail", report["summary"]
        status = decide(world.estate, world.ledger, world.key, promo.id, step, lab.targets, decision="rollback",
                        decided_by="stella", reason=f"analysis failed: {report['summary']}", analysis=report)
        time.sleep(1)                              # traffic goes on after the rollback
    assert status == "rolled_back" and back_at
    bad = [(t, code, body) for t, code, body in traffic.seen if "v2-bad" in body]
    assert bad, "the bad version got no traffic at 10 %: the test proved nothing"
    after = [(t, code, body) for t, code, body in traffic.seen if t > back_at[0]]
    print(f"{lab.router_type}: {len(bad)} answers from the bad version before the switch back, "
          f"{len(after)} requests sent after it")
    assert after and not [x for x in after if "v2-bad" in x[2]], after[:5]
    assert all(code == 200 for _, code, _ in after)
    assert lab.canary.running is None and lab.stable.running == digest(1)
    assert split(lab, 20) == {"v1": 20}


# -- the same through Airflow: inconclusive, a human decides ----------------------------------------

ROOT = Path(__file__).resolve().parents[2]
STEP_1 = "canary.step_1_10pct"


def _awaiting(dag_id: str, task_id: str):
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState as TIS
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == dag_id, TI.task_id == task_id,
                                             TI.state == TIS.AWAITING_INPUT))
        return None if ti is None else ti.run_id


@pytest.mark.parametrize("canary_lab", ["haproxy"], indirect=True)
def test_a_canary_without_traffic_waits_for_a_human_whose_choice_is_honoured(
        canary_lab, airflow_api, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    from airflow.dag_processing.dagbag import DagBag

    import stella_operators.operators.canary as canary_ops
    import stella_operators.operators.promotion as promotion_ops
    from devstack.keys import evidence_key_env
    from stella_operators.hooks.ledger import LedgerHook

    lab = canary_lab
    lab.reset()
    path = tmp_path / "estate.yaml"
    path.write_text(estate_text(lab))
    monkeypatch.setenv("STELLA_ESTATE", str(path))
    for k, v in evidence_key_env(tmp_path / "evidence").items():
        monkeypatch.setenv(k, v)
    host, port = lab.prometheus.url.split("//")[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_PROMETHEUS", json.dumps({"conn_type": "stella_metrics", "host": host,
                                                                     "port": int(port)}))
    # The targets are the lab's processes (the router, Prometheus and Airflow are real).
    monkeypatch.setattr(promotion_ops, "build_target", lab.targets)
    monkeypatch.setattr(canary_ops, "build_target", lab.targets)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    airflow_api.sync_dags(bag)
    ledger = LedgerHook().get_conn()
    name = f"shop-quiet-{int(time.time())}"
    ledger.add_release(Release.seal(
        id=f"rel-{name}", app=APP, name=name, created_at=T0, created_by="ci", source={},
        components=[ComponentDigest(name="web", repository="reg.local/shop/web", digest=digest(2), tag="2")]))
    dag = bag.get_dag("stella_promote__shop__live")
    answered: dict = {}

    def human():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not answered:
            run_id = _awaiting(dag.dag_id, STEP_1)
            if run_id is None:
                time.sleep(0.3)
                continue
            time.sleep(1.5)  # not within a second of parking (TEST-ESTATE.md)
            url = f"/api/v2/dags/{dag.dag_id}/dagRuns/{run_id}/taskInstances/{STEP_1}/-1/hitlDetails"
            answered["request"] = airflow_api.request("GET", url, user="bob").json()
            waiting = ledger.latest_promotion(APP, "live")   # what the Releases page and `stella why` read
            answered["canary"] = airflow_api.request("GET", f"/stella/api/v1/promotions/{waiting.id}",
                                                     user="bob").json()["canary"]
            r = airflow_api.request("PATCH", url, user="bob", json={"chosen_options": ["Roll back"]})
            answered["status"], answered["answer"] = r.status_code, r.text

    thread = threading.Thread(target=human, daemon=True)
    thread.start()
    dr = dag.test(run_conf={"release": name, "reason": "a quiet canary"})   # nobody sends requests
    thread.join(5)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert answered.get("status") == 200, answered
    request = answered["request"]
    assert request["options"] == ["Advance", "Hold", "Roll back"]
    assert "inconclusive" in request["body"] and "error-rate" in request["body"] and "no data" in request["body"]
    assert dr.state == "failed" and states[STEP_1] == "failed", states
    assert states["canary.step_2_50pct"] == "upstream_failed" and states["verify"] == "upstream_failed"
    assert states["canary.roll_back_if_left"] == "success"
    promo = ledger.latest_promotion(APP, "live")
    assert str(promo.status) == "rolled_back"
    [record] = [e for e in ledger.evidence_for(promotion_id=promo.id) if str(e.type) == "canary"]
    content = record.content
    assert content["decision"] == "rollback" and content["decided_by"] == "bob" and content["weight"] == 10
    assert content["analysis"]["outcome"] == "inconclusive"
    decisions = [e for e in ledger.audit_events() if e.action == "deployment.canary_decision"
                 and e.detail.get("decision") == "rollback"]
    assert decisions and decisions[-1].actor == "bob"
    assert lab.canary.running is None and lab.stable.running == digest(1)
    assert split(lab, 20) == {"v1": 20}
    # While the task was parked, the promotion's detail said so; afterwards it names who decided.
    asked = answered["canary"]
    assert asked["state"] == "waiting_for_human" and asked["waiting_for_human_since"], asked
    assert asked["steps"][0]["analysis"]["outcome"] == "inconclusive" and asked["steps"][0]["router_share"] == 10
    after = canary_progress(estate_for(lab), ledger, promo)
    assert after is not None and after.state == "rolled_back" and after.waiting_for_human_since is None
    assert [(d.decision, d.decided_by) for d in after.steps[0].decisions] == [("rollback", "bob")]
