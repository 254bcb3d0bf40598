"""Rollback and drift DAGs end to end: the real estate lab (registry + dockerd hosts in network
namespaces), the shipped DAG file parsed by a real DagBag, runs through `dag.test()`, a real
ledger and signatures, and the plugin's REST API in-process.

Story: 1.0.0 then 1.1.0 are verified in dev; the rollback DAG (no release named) returns both
hosts to 1.0.0 through the gates and writes the evidence; an emergency rollback (gates skipped,
override evidence) returns them to 1.1.0; the drift DAG finds nothing; then someone stops the
container on one host and runs another digest under the same name on the other: the drift DAG
fails naming both, the ledger records it, the Releases REST and `stella status` show it, and the
hosts are left exactly as changed.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import docker
from devstack.estate_lab import HEALTH, conn_id_for
from devstack.keys import evidence_key_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root
APP = "steady"   # its own app: the lab's hosts are shared with the other modules' "shop"
HOSTS = {"r-dev-1": "dev-1", "r-dev-2": "dev-2"}


def estate_yaml(lab) -> str:
    targets = "\n".join(f"      - {{name: {t}, type: docker, connection: {conn_id_for(h)}}}"
                        for t, h in HOSTS.items())
    return textwrap.dedent(f"""
        registries: [{{host: "{lab.registry_host}", scheme: http}}]
        apps:
          - name: {APP}
            components:
              - name: web
                repository: {lab.repository}
                health: {{command: {json.dumps(HEALTH)}, interval_s: 0.5, timeout_s: 2, retries: 3}}
        environments:
          - name: dev
            health_timeout_s: 20
            drift: {{schedule: "*/15 * * * *"}}
            targets:
""") + targets + "\n"


@pytest.fixture(scope="module")
def world(estate_lab, tmp_path_factory, airflow_db):
    work = tmp_path_factory.mktemp("opsdags")
    path = work / "estate.yaml"
    path.write_text(estate_yaml(estate_lab))
    digests = {"1.0.0": estate_lab.push_web("1.0.0"), "1.1.0": estate_lab.push_web("1.1.0", fmt="oci")}
    mp = pytest.MonkeyPatch()
    env = {**estate_lab.connection_env(), **evidence_key_env(work / "evidence"), "STELLA_ESTATE": str(path),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(work / "ledger.db")})}
    for k, v in env.items():
        mp.setenv(k, v)
    try:
        yield {"lab": estate_lab, "digests": digests, "path": path}
    finally:
        mp.undo()
        for host in HOSTS.values():  # leave the shared hosts as the other modules expect them
            client = engine(estate_lab, host)
            for c in client.containers(all=True, filters={"label": f"stella.app={APP}"}):
                client.remove_container(c["Id"], force=True)


@pytest.fixture(scope="module")
def dagbag(world):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def ledger(world):
    from stella_operators.hooks.ledger import LedgerHook

    return LedgerHook().get_conn()


def engine(lab, host) -> docker.APIClient:
    return docker.APIClient(base_url=lab.hosts[host].engine_url, version="auto", timeout=30)


def run(dagbag, dag_id, **conf):
    return dagbag.get_dag(dag_id).test(run_conf=conf)


def rollback(dagbag, *, release=None, reason, emergency=False):
    # Every param named: dag.test() keeps an earlier run's conf in the DAG object's params.
    return run(dagbag, f"stella_rollback__{APP}__dev", release=release, reason=reason, emergency=emergency)


def states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def running(lab) -> dict[str, list[str]]:
    """Per target, the digests of the app's running containers, read from the images themselves."""
    out = {}
    for target, host in HOSTS.items():
        client = engine(lab, host)
        found = []
        for c in client.containers(filters={"label": f"stella.app={APP}"}):
            found.append(client.inspect_image(c["ImageID"])["RepoDigests"][0].split("@", 1)[1])
        out[target] = sorted(found)
    return out


def stella(*args):
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", *args], capture_output=True, text=True)


def test_rollback_returns_the_hosts_and_drift_is_reported_never_fixed(world, dagbag, ledger, airflow_api):
    lab, d = world["lab"], world["digests"]
    for version in ("1.0.0", "1.1.0"):
        assert run(dagbag, f"stella_release__{APP}", name=f"{APP}-{version}", web=version).state == "success"
        assert run(dagbag, f"stella_promote__{APP}__dev", release=f"{APP}-{version}",
                   reason=f"ship {version}").state == "success"
    assert running(lab) == {t: [d["1.1.0"]] for t in HOSTS}

    # A release never verified here is refused before anything is touched, naming the choices.
    assert run(dagbag, f"stella_release__{APP}", name=f"{APP}-never", web="1.0.0").state == "success"
    dr = rollback(dagbag, release=f"{APP}-never", reason="try it")
    assert dr.state == "failed" and ledger.find_promotion_by_run(f"stella_rollback__{APP}__dev", dr.run_id) is None
    assert running(lab) == {t: [d["1.1.0"]] for t in HOSTS}

    # 1. Rollback, default release, through the gates: back to 1.0.0 on every host.
    dr = rollback(dagbag, reason="1.1.0 leaks memory")
    assert dr.state == "success", states(dr)
    assert states(dr)["emergency"] == "skipped" and states(dr)["gates"] == "success"
    assert running(lab) == {t: [d["1.0.0"]] for t in HOSTS}
    promo = ledger.find_promotion_by_run(f"stella_rollback__{APP}__dev", dr.run_id)
    assert ledger.deployed_release(APP, "dev").name == f"{APP}-1.0.0"
    [record] = [r for r in ledger.evidence_for(promotion_id=promo.id) if r.type == "rollback"]
    content = record.content
    assert content["left"] == {"release_id": ledger.find_release(APP, f"{APP}-1.1.0").id,
                               "release_name": f"{APP}-1.1.0", "targets": {t: {"web": d["1.1.0"]} for t in HOSTS}}
    assert content["returned_to"]["release_name"] == f"{APP}-1.0.0"
    assert content["returned_to"]["targets"] == {t: {"web": d["1.0.0"]} for t in HOSTS}
    assert (content["requested_by"], content["reason"], content["emergency"]) == ("dag_test", "1.1.0 leaks memory",
                                                                                 False)
    out = stella("evidence", "verify", record.id)
    assert out.returncode == 0 and f"ok: {record.id}" in out.stdout, out.stdout + out.stderr

    # 2. Emergency rollback to a named release: gates and approval skipped, override evidence signed.
    dr = rollback(dagbag, release=f"{APP}-1.1.0", reason="1.0.0 cannot read the new config", emergency=True)
    assert dr.state == "success", states(dr)
    assert (states(dr)["gates"], states(dr)["approval"], states(dr)["emergency"]) == ("skipped", "skipped", "success")
    assert running(lab) == {t: [d["1.1.0"]] for t in HOSTS}
    promo = ledger.find_promotion_by_run(f"stella_rollback__{APP}__dev", dr.run_id)
    types = sorted(str(r.type) for r in ledger.evidence_for(promotion_id=promo.id))
    assert types.count("override") == 1 and types.count("rollback") == 1 and ledger.gate_verdicts_for(promo.id) == []

    # 3. No drift: recorded as checked.
    dr = run(dagbag, f"stella_drift__{APP}__dev")
    assert dr.state == "success"
    [ok] = ledger.audit_events(f"drift:{APP}/dev")
    assert ok.action == "drift.none"

    # 4. By hand: stop the container on one host, run another digest under the same name on the other.
    one, two = engine(lab, "dev-1"), engine(lab, "dev-2")
    [c1] = one.containers(filters={"label": f"stella.app={APP}"})
    one.stop(c1["Id"], timeout=1)
    [c2] = two.containers(filters={"label": f"stella.app={APP}"})
    info = two.inspect_container(c2["Id"])
    name = info["Name"].lstrip("/")
    two.stop(c2["Id"], timeout=1)
    two.rename(c2["Id"], name + "-moved")
    two.pull(lab.repository, tag=d["1.0.0"])
    impostor = two.create_container(image=f"{lab.repository}@{d['1.0.0']}", name=name, labels=info["Config"]["Labels"],
                                    command=info["Config"]["Cmd"], detach=True)
    two.start(impostor["Id"])
    changed = running(lab)
    assert changed == {"r-dev-1": [], "r-dev-2": [d["1.0.0"]]}

    dr = run(dagbag, f"stella_drift__{APP}__dev")
    assert dr.state == "failed" and states(dr)["check"] == "failed"
    detected = ledger.audit_events(f"drift:{APP}/dev")[-1]
    assert detected.action == "drift.detected"
    assert [f["sentence"] for f in detected.detail["findings"]] == [
        f"r-dev-1: web: expected {d['1.1.0']}, nothing runs",
        f"r-dev-2: web: expected {d['1.1.0']}, running {d['1.0.0']}"]
    assert running(lab) == changed            # never fixed silently
    assert ledger.verify_audit_chain()[0]

    # ...and people see it: the Releases board (REST behind Airflow auth), the drift endpoint, stella status.
    r = airflow_api.request("GET", "/stella/api/v1/ui/board", user="vera")
    assert r.status_code == 200, r.text
    cell = r.json()["deployed"][APP]["dev"]
    assert cell["degraded"] and cell["drift"]["status"] == "drift"
    assert any(f"r-dev-2: web: expected {d['1.1.0']}, running {d['1.0.0']}" in p for p in cell["problems"])
    r = airflow_api.request("GET", "/stella/api/v1/drift", user="vera")
    [check] = [c for c in r.json()["checks"] if c["app"] == APP]
    assert check["last"]["status"] == "drift" and check["last"]["run"]["dag_id"] == f"stella_drift__{APP}__dev"
    assert airflow_api.request("GET", "/stella/api/v1/drift", user=None).status_code == 401
    out = stella("status", "--estate", str(world["path"]))
    assert out.returncode == 0 and "DRIFT: r-dev-1: web: expected" in out.stdout, out.stdout + out.stderr
