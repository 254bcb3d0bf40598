"""A/B by target groups on real Docker hosts (each dockerd in its own network namespace), a real
registry and real health checks (Docker HEALTHCHECK, wget /health inside the container).

- through Airflow (the shipped DAG file, a real DagBag, `dag.test()`): one task per stage; while
  the release moves from group a to group b, a sampler reads every host's containers every 100 ms
  and counts the app's healthy running containers: never fewer than the two the fleet had (B's
  share starts before A's stops), and it must have seen the surge and the half-moved fleet;
- a B worker whose health check starts failing during stage 1's wait (its /health file is removed
  in the running container) fails the stage: group A as it was, B's container removed, the
  reason in the audit log and the promotion's end.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import docker
from devstack.estate_lab import HEALTH, conn_id_for
from devstack.waiting import wait_until
from stella_operators.estate import parse_estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion.ab import STAGE_FAILED
from stella_operators.promotion.service import DeploymentFailed, deploy_promotion, verify_promotion
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.targets.docker.target import DockerTarget
from tests.fixtures.ab_lab import AB_HOSTS, ab_lab  # noqa: F401 - the fixture
from tests.integration.dag_runs import return_value, ti_states

pytestmark = pytest.mark.root
APP = "worker"
ROOT = Path(__file__).resolve().parents[2]


def estate_text(lab) -> str:
    health = ", ".join(f'"{c}"' for c in HEALTH)
    targets = "\n".join(f"      - {{name: {h}, type: docker, connection: {conn_id_for(h)}, group: {h[0]}}}"
                        for h in AB_HOSTS)
    return f"""
version: 1
registries: [{{host: "{lab.registry_host}", scheme: http}}]
apps:
  - name: {APP}
    components:
      - name: consume
        repository: {lab.repository}
        health: {{command: [{health}], interval_s: 0.5, timeout_s: 2, retries: 2}}
environments:
  - name: work
    requires: []
    strategy: ab
    ab: {{groups: [a, b], stages: [50, 100], health_threshold: 100, stage_wait_s: 2}}
    health_timeout_s: 30
    deploy_timeout_s: 120
    targets:
{targets}
"""


@pytest.fixture(scope="module")
def clients(ab_lab):  # noqa: F811 - the fixture
    return {n: docker.APIClient(base_url=h.engine_url, timeout=30) for n, h in ab_lab.hosts.items()}


@pytest.fixture(scope="module")
def images(ab_lab):  # noqa: F811 - the fixture
    return {v: ab_lab.push_web(f"ab-{v}") for v in ("1", "2")}


@pytest.fixture
def clean(clients):
    """Each test starts from hosts that run nothing of the app."""
    for client in clients.values():
        for c in client.containers(all=True, filters={"label": f"stella.app={APP}"}):
            client.remove_container(c["Id"], force=True)
    return clients


def runs(clients, host: str) -> dict[str, str | None]:
    return DockerTarget(host, clients[host]).facts(APP).digests()


class Sampler(threading.Thread):
    """Every 100 ms: the hosts running a healthy container of the app."""

    def __init__(self, clients: dict[str, docker.APIClient]):
        super().__init__(daemon=True)
        self.clients = clients
        self.samples: list[frozenset[str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            up = set()
            for h, client in self.clients.items():
                cs = client.containers(filters={"label": f"stella.app={APP}", "status": "running"})
                if any("(healthy)" in (c.get("Status") or "") for c in cs):
                    up.add(h)
            self.samples.append(frozenset(up))
            self.halt.wait(0.1)


def test_through_airflow_each_stage_is_a_task_and_the_fleet_never_drops_below_its_size(
        ab_lab, images, clean, tmp_path, monkeypatch, airflow_db):  # noqa: F811 - the fixture
    from airflow.dag_processing.dagbag import DagBag

    from devstack.keys import evidence_key_env

    path = tmp_path / "estate.yaml"
    path.write_text(estate_text(ab_lab))
    monkeypatch.setenv("STELLA_ESTATE", str(path))
    for k, v in {**ab_lab.connection_env(), **evidence_key_env(tmp_path / "evidence")}.items():
        monkeypatch.setenv(k, v)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    for tag in ("ab-1", "ab-2"):
        assert bag.get_dag(f"stella_release__{APP}").test(
            run_conf={"name": f"{APP}-{tag}", "consume": tag}).state == "success"
    dag = bag.get_dag(f"stella_promote__{APP}__work")
    deploy_tasks = [t.task_id for t in dag.tasks if t.task_id.startswith("deploy.")]
    assert deploy_tasks == ["deploy.stage_1", "deploy.stage_2", "deploy.roll_back_if_left"]

    first = dag.test(run_conf={"release": f"{APP}-ab-1", "reason": "workers start on group a"})
    assert first.state == "success", ti_states(first)
    assert return_value(first, "deploy.stage_1")["group"] == "a"        # nobody ran it: the first group listed
    assert {h: runs(clean, h) for h in AB_HOSTS} == {"a1": {"consume": images["1"]}, "a2": {"consume": images["1"]},
                                                     "b1": {}, "b2": {}}

    sampler = Sampler(clean)
    sampler.start()
    try:
        second = dag.test(run_conf={"release": f"{APP}-ab-2", "reason": "move the workers to group b"})
    finally:
        sampler.halt.set()
        sampler.join(10)
    states = ti_states(second)
    assert second.state == "success", states
    assert {k: states[k] for k in ("deploy.stage_1", "deploy.stage_2", "verify")} == dict.fromkeys(
        ("deploy.stage_1", "deploy.stage_2", "verify"), "success")
    assert states["deploy.roll_back_if_left"] == "skipped"
    stage_1, stage_2 = return_value(second, "deploy.stage_1"), return_value(second, "deploy.stage_2")
    assert (stage_1["group"], stage_1["previous_group"], stage_1["stage"]) == ("b", "a", 1)
    assert (stage_1["started"], stage_1["stopped"], stage_1["healthy_share"]) == (["b1"], ["a1"], 100)
    assert (stage_2["started"], stage_2["stopped"], stage_2["stage"]) == (["b2"], ["a2"], 2)
    assert {h: runs(clean, h) for h in AB_HOSTS} == {"a1": {}, "a2": {}, "b1": {"consume": images["2"]},
                                                     "b2": {"consume": images["2"]}}
    # group a's containers are stopped, not removed (what a rollback starts again)
    for h in ("a1", "a2"):
        [kept] = clean[h].containers(all=True, filters={"label": f"stella.app={APP}"})
        assert kept["State"] == "exited"

    samples = sampler.samples
    assert len(samples) >= 20, "the sampler must have watched the deployment"
    assert min(len(s) for s in samples) >= 2, [sorted(s) for s in samples if len(s) < 2][:5]
    assert max(len(s) for s in samples) >= 3, "B's share must have been seen up before A's stopped"
    assert frozenset({"a2", "b1"}) in samples, "the half-moved fleet (after stage 1) must have been seen"
    assert samples[0] == {"a1", "a2"} and samples[-1] == {"b1", "b2"}


def test_a_b_worker_turning_unhealthy_in_stage_1_is_rolled_back_and_the_reason_recorded(
        ab_lab, images, clean, tmp_path):  # noqa: F811 - the fixture
    quick = parse_estate(estate_text(ab_lab).replace("stage_wait_s: 2", "stage_wait_s: 0"))
    estate = parse_estate(estate_text(ab_lab).replace("stage_wait_s: 2", "stage_wait_s: 20"))
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    key = SigningKey.generate()

    def targets(config):
        return DockerTarget(config.name, clean[config.name], pull_timeout_s=60, stop_timeout_s=1)

    def approved(n: int):
        rel = Release.seal(id=f"rel-{n}", app=APP, name=f"{APP}-{n}", created_at=datetime.now(UTC), created_by="ci",
                           source={}, components=[ComponentDigest(name="consume", repository=ab_lab.repository,
                                                                  digest=images[str(n)], tag=f"ab-{n}")])
        rel = ledger.add_release(rel)
        promo = ledger.create_promotion(APP, "work", rel.id, "alice", "test", "promote", f"run-{n}")
        for status in (S.EVALUATING, S.APPROVED):
            promo = ledger.transition(promo.id, status, actor="stella")
        return promo

    # group a runs release 1 (a single call runs every stage)
    first = approved(1)
    deploy_promotion(quick, ledger, key, first.id, targets)
    verify_promotion(quick, ledger, key, first.id, targets)
    assert str(ledger.get_promotion(first.id).status) == "deployed"
    before = {h: runs(clean, h) for h in AB_HOSTS}
    assert before["a1"] == {"consume": images["1"]} and before["b1"] == {}

    # release 2's worker on b1 passes its start check, then its health check starts failing
    broken = threading.Event()

    def break_b1() -> None:
        def healthy_new():
            cs = clean["b1"].containers(filters={"label": f"stella.app={APP}", "status": "running"})
            return next((c for c in cs if "(healthy)" in (c.get("Status") or "")), None)
        c = wait_until(healthy_new, 60, "b1's worker healthy", every=0.1)
        exec_id = clean["b1"].exec_create(c["Id"], ["rm", "-f", "/www/health"])
        clean["b1"].exec_start(exec_id)
        broken.set()

    breaker = threading.Thread(target=break_b1, daemon=True)
    breaker.start()
    promo = approved(2)
    t0 = time.monotonic()
    with pytest.raises(DeploymentFailed, match=r"stage 1 of 2 \(50 %\): 0 % of the started targets healthy, "
                                               r"threshold 100 % \(b1: consume unhealthy\)"):
        deploy_promotion(estate, ledger, key, promo.id, targets, batch=0)
    breaker.join(10)
    assert broken.is_set()
    assert time.monotonic() - t0 < 20, "the stage must fail as soon as B falls under the threshold"
    assert str(ledger.get_promotion(promo.id).status) == "rolled_back"
    assert {h: runs(clean, h) for h in AB_HOSTS} == before            # A as before, B's worker gone
    assert clean["b1"].containers(all=True, filters={"label": f"stella.app={APP}"}) == []
    [dep] = ledger.deployments_for(promo.id)
    [failed] = [e.detail for e in ledger.audit_events(f"deployment:{dep.id}") if e.action == STAGE_FAILED]
    assert failed["stage"] == 0 and failed["healthy_share"] == 0 and "b1: consume unhealthy" in failed["error"]
    end = [e for e in ledger.audit_events(f"promotion:{promo.id}") if e.action == "promotion.transition"][-1]
    assert "b1: consume unhealthy" in end.detail["detail"]["error"]
    assert "rollback" in [str(e.type) for e in ledger.evidence_for(promotion_id=promo.id)]
    assert ledger.deploy_lock(APP, "work") is None
    ledger.close()
