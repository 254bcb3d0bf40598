"""Rolling and blue-green deployments on real Docker hosts (each dockerd in its own network
namespace), a real registry, a real HAProxy and a real SQLite ledger, through the promotion
services the DAG's tasks call (one call per batch task, in order).

- rolling: a sampler thread reads every host's containers every 100 ms during the rollout; a host
  is *unavailable* while it does not run exactly one container of the app that Docker reports
  healthy (its HTTP /health check). The rollout must never have more than max_unavailable such
  hosts at once -- and the sampler must have seen hosts in transition, else it proved nothing;
- a failure in batch 2 (host r3 cannot reach the registry) rolls batch 1 back;
- blue-green: a client sends requests through HAProxy without a pause while the green set is
  deployed and traffic switched; not one request may fail; the blue set keeps running for the
  switch-back window and is removed after it.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime

import pytest

import docker
from devstack.estate_lab import HEALTH
from devstack.haproxy import HAProxyServer, haproxy_missing
from devstack.nginx import NginxServer, nginx_missing
from devstack.service_port import ServicePort, route_to_containers, wait_serving
from devstack.waiting import wait_until
from stella_operators.estate import parse_estate
from stella_operators.evidence import SigningKey
from stella_operators.ledger import Ledger
from stella_operators.promotion.batches import deploy_batch
from stella_operators.promotion.retire import retire_due_at, retire_previous_set
from stella_operators.promotion.service import DeploymentFailed, deploy_promotion, verify_promotion
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.promotion.strategies import batch_count
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.routing.nginx import ROUTER_TYPE as NGINX_ROUTER
from stella_operators.routing.nginx_upstream import ServerState, render_upstream
from stella_operators.targets.docker.target import DockerTarget
from tests.fixtures.routers import ensure_router_type
from tests.fixtures.strategies_lab import strategies_lab  # noqa: F401 - the fixture
from tests.integration.dag_runs import return_value, ti_states

pytestmark = pytest.mark.root
APP = "shop"


def estate_text(lab, socket_path: str = "/nonexistent", router: str | None = None) -> str:
    """`router`: the blue_green router as a YAML flow mapping (default: HAProxy on `socket_path`)."""
    health = ", ".join(f'"{c}"' for c in HEALTH)
    router = router or f'{{type: haproxy, settings: {{socket: "{socket_path}", backend: shop_web}}}}'
    return f"""
version: 1
registries: [{{host: "{lab.registry_host}", scheme: http}}]
apps:
  - name: {APP}
    components:
      - name: web
        repository: {lab.repository}
        health: {{command: [{health}], interval_s: 0.5, timeout_s: 2, retries: 3}}
environments:
  - name: prod
    requires: []
    strategy: rolling
    rolling: {{batch_size: 2, max_unavailable: 1}}
    health_timeout_s: 30
    deploy_timeout_s: 120
    targets:
      - {{name: r1, type: docker, connection: c_r1}}
      - {{name: r2, type: docker, connection: c_r2}}
      - {{name: r3, type: docker, connection: c_r3}}
  - name: live
    requires: []
    strategy: blue_green
    blue_green:
      router: {router}
      switch_back_s: 4
      ready_timeout_s: 30
    health_timeout_s: 30
    deploy_timeout_s: 120
    targets:
      - {{name: b1, type: docker, connection: c_b1, group: blue}}
      - {{name: g1, type: docker, connection: c_g1, group: green}}
"""


class Promoter:
    """The services a promote DAG's tasks call, with real Docker targets and a SQLite ledger."""

    def __init__(self, lab, tmp_path, socket_path: str = "/nonexistent", router: str | None = None):
        self.lab = lab
        self.estate = parse_estate(estate_text(lab, socket_path, router))
        self.ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
        self.key = SigningKey.generate()
        self.clients = {n: docker.APIClient(base_url=h.engine_url, timeout=30) for n, h in lab.hosts.items()}
        self.n = 0

    def targets(self, config):
        return DockerTarget(config.name, self.clients[config.name], pull_timeout_s=60, stop_timeout_s=1)

    def release(self, tag: str, digest: str) -> Release:
        rel = Release.seal(id=f"rel-{tag}", app=APP, name=f"{APP}-{tag}", created_at=datetime.now(UTC),
                           created_by="ci", source={},
                           components=[ComponentDigest(name="web", repository=self.lab.repository, digest=digest,
                                                       tag=tag)])
        return self.ledger.find_release(APP, rel.name) or self.ledger.add_release(rel)

    def approved(self, env: str, rel: Release):
        self.n += 1
        promo = self.ledger.create_promotion(APP, env, rel.id, "alice", "test", "promote", f"run-{self.n}")
        for status in (S.EVALUATING, S.APPROVED):
            promo = self.ledger.transition(promo.id, status, actor="stella")
        return promo

    def deploy(self, env: str, promo) -> None:
        """What the DAG runs: batch 1 (deploy_promotion), then every later batch task in order."""
        deploy_promotion(self.estate, self.ledger, self.key, promo.id, self.targets,
                         batch=0 if batch_count(self.estate.environment(env)) > 1 else None)
        for k in range(1, batch_count(self.estate.environment(env))):
            deploy_batch(self.estate, self.ledger, self.key, promo.id, self.targets, k)

    def ship(self, env: str, rel: Release):
        promo = self.approved(env, rel)
        self.deploy(env, promo)
        verify_promotion(self.estate, self.ledger, self.key, promo.id, self.targets)
        return promo


def digests_on(p: Promoter, hosts: list[str]) -> dict[str, list[str]]:
    out = {}
    for h in hosts:
        facts = DockerTarget(h, p.clients[h]).facts(APP)
        out[h] = sorted(d for d in facts.digests().values() if d)
    return out


@pytest.fixture(scope="module")
def images(strategies_lab):  # noqa: F811 - the fixture
    return {v: strategies_lab.push_web(f"strategies-{v}") for v in ("1", "2", "3")}


class Sampler(threading.Thread):
    """Every 100 ms: which hosts are not running exactly one healthy container of the app."""

    def __init__(self, clients: dict[str, docker.APIClient], hosts: list[str]):
        super().__init__(daemon=True)
        self.clients, self.hosts = clients, hosts
        self.samples: list[set[str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            down = set()
            for h in self.hosts:
                cs = self.clients[h].containers(filters={"label": f"stella.app={APP}", "status": "running"})
                if len(cs) != 1 or "(healthy)" not in (cs[0].get("Status") or ""):
                    down.add(h)
            self.samples.append(down)
            self.halt.wait(0.1)


def test_rolling_never_has_more_than_max_unavailable_hosts_down(strategies_lab, images, tmp_path):  # noqa: F811
    p = Promoter(strategies_lab, tmp_path)
    hosts = ["r1", "r2", "r3"]
    p.ship("prod", p.release("1", images["1"]))
    assert digests_on(p, hosts) == {h: [images["1"]] for h in hosts}
    sampler = Sampler(p.clients, hosts)
    sampler.start()
    try:
        promo = p.ship("prod", p.release("2", images["2"]))
    finally:
        sampler.halt.set()
        sampler.join(10)
    assert str(p.ledger.get_promotion(promo.id).status) == "deployed"
    assert digests_on(p, hosts) == {h: [images["2"]] for h in hosts}
    peak = max(len(s) for s in sampler.samples)
    seen = set().union(*sampler.samples)
    assert len(sampler.samples) >= 10, "the sampler must have watched the rollout"
    assert seen == set(hosts), f"every host must have been seen in transition (saw {seen})"
    assert peak <= 1, [s for s in sampler.samples if len(s) > 1]


def test_a_failure_in_batch_2_rolls_batch_1_back(strategies_lab, images, tmp_path):  # noqa: F811
    p = Promoter(strategies_lab, tmp_path)
    hosts = ["r1", "r2", "r3"]
    p.ship("prod", p.release("1", images["1"]))
    promo = p.approved("prod", p.release("3", images["3"]))
    deploy_promotion(p.estate, p.ledger, p.key, promo.id, p.targets, batch=0)
    assert digests_on(p, hosts) == {"r1": [images["3"]], "r2": [images["3"]], "r3": [images["1"]]}
    # r3 (batch 2) loses the registry: its pull fails
    ns = strategies_lab.hosts["r3"].netns
    block = ["OUTPUT", "-p", "tcp", "-d", f"{strategies_lab.subnet_prefix}.1", "--dport",
             str(strategies_lab.registry_port), "-j", "REJECT"]
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-I", *block], check=True)
    try:
        with pytest.raises(DeploymentFailed, match="batch 2 failed.*r3.*every host was rolled back"):
            deploy_batch(p.estate, p.ledger, p.key, promo.id, p.targets, 1)
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "iptables", "-D", *block], check=False)
    assert str(p.ledger.get_promotion(promo.id).status) == "rolled_back"
    assert digests_on(p, hosts) == {h: [images["1"]] for h in hosts}
    assert "rollback" in [str(e.type) for e in p.ledger.evidence_for(promotion_id=promo.id)]
    assert p.ledger.deploy_lock(APP, "prod") is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(haproxy_missing() is not None, reason=haproxy_missing() or "")
def test_blue_green_switch_behind_haproxy_loses_no_request(strategies_lab, images, tmp_path):  # noqa: F811
    lab = strategies_lab
    clients = {n: docker.APIClient(base_url=lab.hosts[n].engine_url, timeout=30) for n in ("b1", "g1")}
    undo = [route_to_containers(lab.hosts[n], clients[n]) for n in ("b1", "g1")]
    ports = {n: ServicePort(clients[n], APP).start() for n in ("b1", "g1")}
    proxy = HAProxyServer(tmp_path / "haproxy", port=free_port(), backend="shop_web",
                          servers={n: ports[n].address for n in ("b1", "g1")}, weights={"b1": 0, "g1": 0})
    try:
        proxy.start()
        p = Promoter(lab, tmp_path, socket_path=str(proxy.socket_path))
        # blue serves release 1 (the first deployment goes to the first group: nothing had traffic)
        p.ship("live", p.release("1", images["1"]))
        wait_serving(ports["b1"])
        wait_until(lambda: _get(proxy)[1].strip() == "strategies-1", 30, "blue serving release 1", every=0.2)

        answers: list[str] = []
        failures: list[str] = []
        halt = threading.Event()

        def client() -> None:
            while not halt.is_set():
                try:
                    status, body = _get(proxy)
                    (answers if status == 200 else failures).append(body if status == 200 else f"{status} {body}")
                except OSError as exc:
                    failures.append(repr(exc))

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        try:
            promo = p.approved("live", p.release("2", images["2"]))
            p.deploy("live", promo)
            verify_promotion(p.estate, p.ledger, p.key, promo.id, p.targets)
            wait_until(lambda: answers and answers[-1].strip() == "strategies-2", 10, "green answering", every=0.05)
            # the previous set stays up for the switch-back window
            due = retire_due_at(p.estate, p.ledger, promo.id)
            assert due is not None and due > datetime.now(UTC)
            assert digests_on(p, ["b1"]) == {"b1": [images["1"]]}
            while datetime.now(UTC) < due:
                assert len(clients["b1"].containers(filters={"label": f"stella.app={APP}"})) == 1
                time.sleep(0.2)
            result = retire_previous_set(p.estate, p.ledger, promo.id, p.targets)
            time.sleep(1)  # traffic continues after the old set left
        finally:
            halt.set()
            thread.join(10)
        assert failures == [], failures[:5]
        versions = [a.strip() for a in answers]
        assert len(versions) > 50 and versions[0] == "strategies-1" and versions[-1] == "strategies-2"
        switch = versions.index("strategies-2")
        assert set(versions[switch:]) == {"strategies-2"}, "after the switch, no request went to blue"
        assert result.removed == ["b1"] and result.errors == []
        assert clients["b1"].containers(filters={"label": f"stella.app={APP}"}) == []
        assert digests_on(p, ["g1"]) == {"g1": [images["2"]]}
    finally:
        proxy.stop()
        for port in ports.values():
            port.stop()
        for u in undo:
            u()


@pytest.mark.skipif(nginx_missing() is not None, reason=nginx_missing() or "")
def test_blue_green_switch_behind_nginx_loses_no_request(strategies_lab, images, tmp_path, monkeypatch):  # noqa: F811
    """The same switch through a real nginx: the `nginx` router rewrites the upstream file, checks it
    with `nginx -t` and reloads; its health probe is an HTTP GET /health from here."""
    ensure_router_type(monkeypatch, NGINX_ROUTER)   # until the venv lists this branch's entry point
    lab = strategies_lab
    clients = {n: docker.APIClient(base_url=lab.hosts[n].engine_url, timeout=30) for n in ("b1", "g1")}
    for client in clients.values():  # start from empty sets (the HAProxy test left releases there)
        for c in client.containers(all=True, filters={"label": f"stella.app={APP}"}):
            client.remove_container(c["Id"], force=True)
    undo = [route_to_containers(lab.hosts[n], clients[n]) for n in ("b1", "g1")]
    ports = {n: ServicePort(clients[n], APP).start() for n in ("b1", "g1")}
    addresses = {n: ports[n].address for n in ("b1", "g1")}
    proxy = NginxServer(tmp_path / "nginx", port=free_port(),    # no traffic anywhere at first
                        upstream=render_upstream("shop_web", [ServerState(n, a) for n, a in addresses.items()]))
    try:
        proxy.start()
        settings = proxy.router_settings(addresses, health_path="/health")
        p = Promoter(lab, tmp_path, router=json.dumps({"type": "nginx", "settings": settings}))
        p.ship("live", p.release("1", images["1"]))
        wait_serving(ports["b1"])
        wait_until(lambda: _version(proxy.port) == (200, "strategies-1"), 30, "blue serving release 1", every=0.2)

        answers: list[str] = []
        failures: list[str] = []
        halt = threading.Event()

        def client() -> None:
            while not halt.is_set():
                try:
                    status, body = _version(proxy.port)
                    (answers if status == 200 else failures).append(body if status == 200 else f"{status} {body}")
                except OSError as exc:
                    failures.append(repr(exc))

        thread = threading.Thread(target=client, daemon=True)
        thread.start()
        try:
            promo = p.approved("live", p.release("2", images["2"]))
            p.deploy("live", promo)
            switched_at = len(answers)
            verify_promotion(p.estate, p.ledger, p.key, promo.id, p.targets)
            wait_until(lambda: answers and answers[-1] == "strategies-2", 10, "green answering", every=0.05)
            due = retire_due_at(p.estate, p.ledger, promo.id)
            assert due is not None and due > datetime.now(UTC)
            while datetime.now(UTC) < due:   # the previous set stays up for the switch-back window
                assert len(clients["b1"].containers(filters={"label": f"stella.app={APP}"})) == 1
                time.sleep(0.2)
            result = retire_previous_set(p.estate, p.ledger, promo.id, p.targets)
            time.sleep(1)  # traffic continues after the old set left
        finally:
            halt.set()
            thread.join(10)
        assert failures == [], failures[:5]
        assert len(answers) > 50 and answers[0] == "strategies-1" and answers[-1] == "strategies-2"
        # during the reload (~0.1 s: nginx's old workers accept until its master tells them to stop)
        # requests reach either set; once the switch returned, none reached blue (bar a few in flight)
        assert set(answers[switched_at + 3:]) == {"strategies-2"}, "after the switch, no request went to blue"
        assert result.removed == ["b1"] and result.errors == []
        assert "name=b1 weight=0 maint" in proxy.upstream_path.read_text()    # blue left service
        assert clients["b1"].containers(filters={"label": f"stella.app={APP}"}) == []
    finally:
        proxy.stop()
        for port in ports.values():
            port.stop()
        for u in undo:
            u()


def _version(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/version")
        resp = conn.getresponse()
        return resp.status, resp.read().decode().strip()
    finally:
        conn.close()


def _get(proxy: HAProxyServer) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("GET", "/version")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


# -- the same through Airflow: the shipped DAG file, a real DagBag, dag.test() ---------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rolling_dags(strategies_lab, tmp_path_factory, airflow_db):  # noqa: F811 - the fixture
    from airflow.dag_processing.dagbag import DagBag

    from devstack.estate_lab import conn_id_for
    from devstack.keys import evidence_key_env

    lab = strategies_lab
    text = estate_text(lab)
    for name in ("r1", "r2", "r3", "b1", "g1"):
        text = text.replace(f"connection: c_{name}", f"connection: {conn_id_for(name)}")
    path = tmp_path_factory.mktemp("strategies-estate") / "estate.yaml"
    path.write_text(text)
    mp = pytest.MonkeyPatch()
    mp.setenv("STELLA_ESTATE", str(path))
    for k, v in {**lab.connection_env(), **evidence_key_env(tmp_path_factory.mktemp("evidence"))}.items():
        mp.setenv(k, v)
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    yield bag
    mp.undo()


def test_the_grid_shows_each_batch_and_each_targets_result(strategies_lab, images, rolling_dags):  # noqa: F811
    from stella_operators.hooks.ledger import LedgerHook

    lab = strategies_lab
    dag = rolling_dags.get_dag("stella_promote__shop__prod")
    release = rolling_dags.get_dag("stella_release__shop")
    ledger = LedgerHook().get_conn()
    for tag in ("strategies-1", "strategies-3"):
        assert release.test(run_conf={"name": f"shop-{tag}", "web": tag}).state == "success"

    dr = dag.test(run_conf={"release": "shop-strategies-1", "reason": "rolling through the grid"})
    assert dr.state == "success", ti_states(dr)
    states = ti_states(dr)
    assert {k: states[k] for k in ("deploy.batch_1", "deploy.batch_2", "verify")} == dict.fromkeys(
        ("deploy.batch_1", "deploy.batch_2", "verify"), "success")
    assert states["deploy.roll_back_if_left"] == "skipped"
    # each batch task reports its own targets' results (XCom, and one log line per target)
    assert set(return_value(dr, "deploy.batch_1")["targets"]) == {"r1", "r2"}
    assert set(return_value(dr, "deploy.batch_1")["targets"].values()) <= {"deployed", "unchanged"}
    assert return_value(dr, "deploy.batch_1")["batch"] == 1 and return_value(dr, "deploy.batch_2")["batch"] == 2
    assert set(return_value(dr, "deploy.batch_2")["targets"]) == {"r3"}
    assert ledger.deployed_release(APP, "prod").name == "shop-strategies-1"

    # batch 2's host loses the registry: batch 1 is rolled back, the grid says where it failed
    ns = lab.hosts["r3"].netns
    block = ["OUTPUT", "-p", "tcp", "-d", f"{lab.subnet_prefix}.1", "--dport", str(lab.registry_port), "-j", "REJECT"]
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-I", *block], check=True)
    try:
        dr = dag.test(run_conf={"release": "shop-strategies-3", "reason": "batch 2 will fail"})
    finally:
        subprocess.run(["ip", "netns", "exec", ns, "iptables", "-D", *block], check=False)
    states = ti_states(dr)
    assert dr.state == "failed"
    assert states["deploy.batch_1"] == "success" and states["deploy.batch_2"] == "failed", states
    assert states["verify"] == "upstream_failed"
    assert states["deploy.roll_back_if_left"] == "success"   # ran, found the promotion already rolled back
    assert return_value(dr, "deploy.roll_back_if_left")["status"] == "rolled_back"
    assert ledger.latest_promotion(APP, "prod").status == "rolled_back"
    clients = {n: docker.APIClient(base_url=lab.hosts[n].engine_url, timeout=30) for n in ("r1", "r2", "r3")}
    for n, client in clients.items():
        facts = DockerTarget(n, client).facts(APP)
        assert facts.digests() == {"web": images["1"]}, n


@pytest.mark.skipif(haproxy_missing() is not None, reason=haproxy_missing() or "")
def test_blue_green_through_airflow_retires_the_previous_set_after_the_window(
        strategies_lab, images, rolling_dags, tmp_path, monkeypatch):  # noqa: F811 - the fixture
    """The blue-green promote DAG: deploy (switch), verify, then retire_previous_set waits deferred
    for the switch-back window and removes the blue set."""
    from airflow.dag_processing.dagbag import DagBag

    from devstack.estate_lab import conn_id_for

    lab = strategies_lab
    clients = {n: docker.APIClient(base_url=lab.hosts[n].engine_url, timeout=30) for n in ("b1", "g1")}
    for client in clients.values():  # start from empty sets (earlier tests left releases there)
        for c in client.containers(all=True, filters={"label": f"stella.app={APP}"}):
            client.remove_container(c["Id"], force=True)
    undo = [route_to_containers(lab.hosts[n], clients[n]) for n in ("b1", "g1")]
    ports = {n: ServicePort(clients[n], APP).start() for n in ("b1", "g1")}
    proxy = HAProxyServer(tmp_path / "haproxy", port=free_port(), backend="shop_web",
                          servers={n: ports[n].address for n in ("b1", "g1")}, weights={"b1": 0, "g1": 0})
    try:
        proxy.start()
        text = estate_text(lab, str(proxy.socket_path))
        for name in ("r1", "r2", "r3", "b1", "g1"):
            text = text.replace(f"connection: c_{name}", f"connection: {conn_id_for(name)}")
        path = tmp_path / "estate.yaml"
        path.write_text(text)
        monkeypatch.setenv("STELLA_ESTATE", str(path))
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        assert bag.import_errors == {}
        dag = bag.get_dag("stella_promote__shop__live")
        from stella_operators.hooks.ledger import LedgerHook

        ledger = LedgerHook().get_conn()
        for tag in ("strategies-1", "strategies-2"):
            if ledger.find_release(APP, f"shop-{tag}") is None:  # the rolling DAG test may have cut it
                assert bag.get_dag("stella_release__shop").test(
                    run_conf={"name": f"shop-{tag}", "web": tag}).state == "success"
        first = dag.test(run_conf={"release": "shop-strategies-1", "reason": "blue first"})
        assert first.state == "success", ti_states(first)
        assert return_value(first, "deploy")["group"] == "blue"
        assert return_value(first, "retire_previous_set")["removed"] == []      # nothing served before
        started = time.monotonic()
        second = dag.test(run_conf={"release": "shop-strategies-2", "reason": "switch to green"})
        assert second.state == "success", ti_states(second)
        deployed = return_value(second, "deploy")
        assert deployed["group"] == "green" and deployed["previous_group"] == "blue"
        assert return_value(second, "retire_previous_set")["removed"] == ["b1"]
        assert time.monotonic() - started >= 4        # it waited for the switch-back window (4 s)
        assert clients["b1"].containers(all=True, filters={"label": f"stella.app={APP}"}) == []
        assert _get(proxy) == (200, "strategies-2\n")
    finally:
        proxy.stop()
        for port in ports.values():
            port.stop()
        for u in undo:
            u()
