"""A canary on real Docker hosts, through Airflow (`dag.test()` of the generated promote DAG),
behind a real HAProxy, judged by a real Prometheus -- with the demo estate's own analysis
(include/estate.yaml, environment prod: its `${targets}` query).

The estate lab's stage-1 / stage-2 dockerd hosts are the blue and green groups of an app `api`
(the other tests deploy `shop` there); the image is the demo's metrics image (busybox httpd + CGI,
devstack/metrics_image.py) and devstack/canary_front.py puts HAProxy, Prometheus and ~20
requests/s in front of them, as `scripts/demo` does.

- the first release walks 10 -> 50 -> 100 % (one task per step, a signed `canary` record each) and
  then answers every request through HAProxy;
- a release answering 20 % of its requests with HTTP 500 fails its analysis at the first step: the
  traffic is back on the previous release, its host is restored, and no answer through HAProxy
  comes from the bad version afterwards.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

import docker
from devstack.canary_front import APP_PATH, start_front, stop_front
from devstack.keys import evidence_key_env
from devstack.registry import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root
GOOD, BAD = "canary-1.0.0", "canary-1.2.0-errors"
GROUPS = {"stage-1": "blue", "stage-2": "green"}


def demo_analysis() -> dict:
    demo = yaml.safe_load((ROOT / "include" / "estate.yaml").read_text())
    [prod] = [e for e in demo["environments"] if e["name"] == "prod"]
    return prod["canary"]["analysis"]


def estate_text(lab, socket: Path) -> str:
    health = json.dumps(["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"])
    targets = "\n".join(f"      - {{name: {t}, type: docker, connection: stella_docker_{t.replace('-', '_')}, "
                        f"group: {g}}}" for t, g in GROUPS.items())
    return f"""
version: 1
registries: [{{host: "{lab.registry_host}", scheme: http}}]
apps:
  - name: api
    components:
      - name: web
        repository: {lab.repository}
        health: {{command: {health}, interval_s: 0.5, timeout_s: 2, retries: 3}}
        ports: [{{target: 8080, published: 8080}}]
environments:
  - name: prod
    requires: []
    strategy: canary
    canary:
      router: {{type: haproxy, settings: {{socket: "{socket}", backend: shop_prod}}}}
      groups: [blue, green]
      steps: [10, 50, 100]
      bake_s: 0
      ready_timeout_s: 30
      analysis: {json.dumps(demo_analysis())}
      switch_back_s: 0
    targets:
{targets}
    health_timeout_s: 30
"""


@pytest.fixture(scope="module")
def world(estate_lab, tmp_path_factory, airflow_db):
    lab = estate_lab
    digests = {GOOD: lab.push_web(GOOD, error_pct=0), BAD: lab.push_web(BAD, error_pct=20)}
    work = tmp_path_factory.mktemp("canary-docker")
    for target in GROUPS:   # what other modules left on these hosts must not hold port 8080
        client = docker.APIClient(base_url=lab.hosts[target].engine_url, version="auto", timeout=30)
        assert not [c for c in client.containers() if any(p.get("PublicPort") == 8080 for p in c["Ports"])]
    front = start_front(work / "front", {t: f"{lab.hosts[t].ip}:8080" for t in GROUPS}, weights={"stage-2": 0},
                        port=free_port(), prometheus_port=free_port(), rps=20)
    mp = pytest.MonkeyPatch()
    try:
        path = work / "estate.yaml"
        path.write_text(estate_text(lab, front.socket))
        mp.setenv("STELLA_ESTATE", str(path))
        mp.setenv("STELLA_LOCKER_URL", (work / "locker").as_uri())
        for k, v in {**lab.connection_env(), **evidence_key_env(work / "keys"),
                     "AIRFLOW_CONN_STELLA_PROMETHEUS": json.dumps({"conn_type": "stella_metrics",
                                                                   "host": front.prometheus_url})}.items():
            mp.setenv(k, v)
        from airflow.dag_processing.dagbag import DagBag

        from stella_operators.hooks.ledger import LedgerHook

        bag = DagBag(dag_folder=str(ROOT / "dags"))
        assert bag.import_errors == {}
        yield {"lab": lab, "front": front, "bag": bag, "ledger": LedgerHook().get_conn(), "digests": digests}
    finally:
        mp.undo()
        stop_front(work / "front")
        for target in GROUPS:
            client = docker.APIClient(base_url=lab.hosts[target].engine_url, version="auto", timeout=30)
            for c in client.containers(all=True, filters={"label": "stella.app=api"}):
                client.remove_container(c["Id"], force=True)


def answers(front, n: int = 40) -> dict[str, int]:
    """What n requests through HAProxy get back: `ok from VERSION` / `error from VERSION` counts."""
    seen: dict[str, int] = {}
    for _ in range(n):
        try:
            with urllib.request.urlopen(front.proxy_url + APP_PATH, timeout=5) as r:
                body = r.read().decode().strip()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode().strip() or f"HTTP {exc.code}"
        seen[body] = seen.get(body, 0) + 1
    return seen


def promote(world, tag: str, reason: str):
    bag, ledger = world["bag"], world["ledger"]
    name = f"api-{tag}"
    assert bag.get_dag("stella_release__api").test(run_conf={"name": name, "web": tag}).state == "success"
    dr = bag.get_dag("stella_promote__api__prod").test(run_conf={"release": name, "reason": reason})
    return dr, ledger.latest_promotion("api", "prod")


def step_states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances() if ti.task_id.startswith("canary.")}


def test_a_healthy_canary_walks_its_steps_on_real_hosts_then_a_bad_one_is_rolled_back_at_the_first(world):
    front, ledger = world["front"], world["ledger"]

    dr, promo = promote(world, GOOD, "first canary")
    assert dr.state == "success", step_states(dr)
    assert str(promo.status) == "deployed"
    assert step_states(dr) == {"canary.deploy": "success", "canary.step_1_10pct": "success",
                               "canary.step_2_50pct": "success", "canary.step_3_100pct": "success",
                               "canary.roll_back_if_left": "skipped"}
    kinds = [str(e.type) for e in ledger.evidence_for(promotion_id=promo.id)]
    assert kinds.count("canary") == 3
    assert answers(front) == {f"ok from {GOOD}": 40}

    t0 = time.monotonic()
    dr, promo = promote(world, BAD, "a release that fails a fifth of its requests")
    took = time.monotonic() - t0
    assert dr.state == "failed"
    assert str(promo.status) == "rolled_back"
    states = step_states(dr)
    assert states["canary.deploy"] == "success" and states["canary.step_1_10pct"] == "failed", states
    assert states["canary.step_2_50pct"] != "success"
    [record] = [e for e in ledger.evidence_for(promotion_id=promo.id) if str(e.type) == "canary"]
    assert "rollback" in json.dumps(record.content if hasattr(record, "content") else record.payload)
    # Traffic is back on the good release, whose host was never touched; the bad one is gone.
    assert answers(front) == {f"ok from {GOOD}": 40}
    lab = world["lab"]
    blue = docker.APIClient(base_url=lab.hosts["stage-1"].engine_url, version="auto", timeout=30)
    assert [c["Image"] for c in blue.containers(filters={"label": "stella.app=api"})
            if world["digests"][BAD] in c["Image"]] == []
    print(f"the failing canary was promoted, judged and rolled back in {took:.0f} s")
