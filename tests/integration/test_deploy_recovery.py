"""A worker killed mid-deployment, through a real Airflow (api-server, scheduler with
LocalExecutor, triggerer, dag-processor as separate processes) and two real dockerd hosts.

The app's health check runs its first probe 6 s after a container starts, so a deployment spends
several seconds preparing on both hosts: long enough to SIGKILL the deploy task's process while
new containers run beside the old ones. Airflow's retry of the deploy task then finds its own
deployment unfinished in the ledger and rolls every host back; the lock is released and the next
promotion deploys.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import docker
from devstack.estate_lab import HEALTH, conn_id_for
from devstack.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root
APP, DAG = "slowweb", "stella_promote__slowweb__dev"
HOSTS = ("dev-1", "dev-2")


def estate_yaml(lab) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "{lab.registry_host}", scheme: http}}]
        approver_groups: [{{name: ops, users: [admin]}}]
        apps:
          - name: {APP}
            components:
              - name: web
                repository: {lab.repository}
                health: {{command: {json.dumps(HEALTH)}, interval_s: 6, timeout_s: 2, retries: 3}}
        environments:
          - name: dev
            health_timeout_s: 40
            lock_lease_s: 10
            targets:
              - {{name: s-dev-1, type: docker, connection: {conn_id_for("dev-1")}}}
              - {{name: s-dev-2, type: docker, connection: {conn_id_for("dev-2")}}}
          - name: gated
            requires: []
            approvals: {{required: 1, groups: [ops], separation_of_duties: false, timeout_s: 30}}
            targets: [{{name: s-gated-1, type: docker, connection: {conn_id_for("dev-1")}}}]
    """)


@pytest.fixture(scope="module")
def stack(estate_lab, tmp_path_factory):
    from devstack.airflow_stack import AirflowStack

    work = tmp_path_factory.mktemp("recovery")
    estate = work / "estate.yaml"
    estate.write_text(estate_yaml(estate_lab))
    ledger_path = work / "ledger.db"
    env = {**estate_lab.connection_env(), "STELLA_ESTATE": str(estate), "STELLA_HOME": str(work / "stella"),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(ledger_path)})}
    s = AirflowStack(home=work / "airflow", dags_folder=ROOT / "dags", users={"admin": "admin"}, env=env)
    s.start()
    try:
        s.client = httpx.Client(base_url=s.url, timeout=30)
        s.token = s.client.post("/auth/token", json={"username": "admin", "password": s.passwords["admin"]}
                                ).json()["access_token"]
        s.wait_for_dag(DAG, s.token)
        s.env_extra, s.estate_path, s.ledger_path = env, estate, ledger_path
        yield s
    finally:
        s.stop()


def call(stack, method, url, **kw):
    return stack.client.request(method, url, headers={"Authorization": f"Bearer {stack.token}"}, **kw)


def ledger(stack):
    from stella_operators.ledger import Ledger

    return Ledger.open(f"sqlite:///{stack.ledger_path}")




def trigger(stack, release: str, dag: str = DAG) -> str:
    r = call(stack, "POST", f"/api/v2/dags/{dag}/dagRuns",
             json={"logical_date": None, "conf": {"release": release, "reason": "recovery test"}})
    assert r.status_code == 200, r.text
    return r.json()["dag_run_id"]


def wait_run(stack, run_id, timeout_s=180) -> str:
    def done():
        st = call(stack, "GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}").json()["state"]
        return st if st in ("success", "failed") else None
    return wait_until(done, timeout_s, f"run {run_id}")


def deploy_ti(stack, run_id) -> dict:
    return call(stack, "GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/deploy").json()


def engine(lab, host) -> docker.APIClient:
    return docker.APIClient(base_url=lab.hosts[host].engine_url, version="auto", timeout=30)


def running_digests(lab) -> dict[str, list[str]]:
    out = {}
    for host in HOSTS:
        client = engine(lab, host)
        digests = []
        for c in client.containers(filters={"label": f"stella.app={APP}"}):
            digests.append(client.inspect_image(c["ImageID"])["RepoDigests"][0].split("@", 1)[1])
        out[host] = sorted(digests)
    return out


def containers_of(lab, deployment_id: str) -> dict[str, int]:
    return {h: len(engine(lab, h).containers(all=True, filters={"label": f"stella.deployment.id={deployment_id}"}))
            for h in HOSTS}


def release(stack, name: str, tag: str) -> None:
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "release", "create", "--estate",
                          str(stack.estate_path), "--app", APP, "--name", name, f"web={tag}",
                          "--api-url", stack.url, "--user", "admin"],
                         env={**os.environ, **stack.env_extra, "STELLA_API_PASSWORD": stack.passwords["admin"]},
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_worker_killed_mid_deploy_is_rolled_back_then_the_next_promotion_deploys(stack, estate_lab):
    digests = {v: estate_lab.push_web(f"recovery-{v}") for v in ("1", "2", "3")}
    for v in digests:
        release(stack, f"{APP}-{v}", f"recovery-{v}")

    run1 = trigger(stack, f"{APP}-1")
    assert wait_run(stack, run1) == "success"
    assert running_digests(estate_lab) == {h: [digests["1"]] for h in HOSTS}

    run2 = trigger(stack, f"{APP}-2")
    promo = wait_until(lambda: ledger(stack).find_promotion_by_run(DAG, run2), 60, "the promotion")

    def deploying():  # both hosts run the new container beside the old one, health still starting
        deps = ledger(stack).deployments_for(promo.id)
        return deps and all(containers_of(estate_lab, deps[-1].id).values()) and deps[-1]
    deployment = wait_until(deploying, 90, "new containers on both hosts", every=0.2)
    ti = deploy_ti(stack, run2)
    assert ti["state"] == "running" and ti["try_number"] == 1 and ti["pid"], ti
    assert ledger(stack).get_promotion(promo.id).status == "deploying"
    os.kill(ti["pid"], signal.SIGKILL)           # the worker dies mid-deployment
    killed_at = time.monotonic()

    assert wait_run(stack, run2) == "failed"
    ti = deploy_ti(stack, run2)
    assert ti["try_number"] == 2, ti             # Airflow retried the deploy task: it rolled back
    led = ledger(stack)
    assert led.get_promotion(promo.id).status == "rolled_back"
    assert running_digests(estate_lab) == {h: [digests["1"]] for h in HOSTS}
    assert containers_of(estate_lab, deployment.id) == {h: 0 for h in HOSTS}
    assert led.deploy_lock(APP, "dev") is None
    assert led.deployments_for(promo.id)[-1].status == "rolled_back"
    [rollback] = [e for e in led.evidence_for(promotion_id=promo.id) if e.type == "rollback"]
    assert "interrupted" in rollback.content["reason"]
    assert {t["target"]: t["restored"] for t in rollback.content["targets"]} == {"s-dev-1": True, "s-dev-2": True}
    print(f"rolled back {time.monotonic() - killed_at:.1f} s after the kill")

    run3 = trigger(stack, f"{APP}-3")
    assert wait_run(stack, run3) == "success"
    assert running_digests(estate_lab) == {h: [digests["3"]] for h in HOSTS}
    assert ledger(stack).deploy_lock(APP, "dev") is None
    for host in HOSTS:  # the old workloads kept for a rollback were removed once verified
        assert len(engine(estate_lab, host).containers(all=True, filters={"label": f"stella.app={APP}"})) == 1


def abort_cli(stack, promotion_id: str, reason: str):
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "promotion", "abort", promotion_id,
                           "--reason", reason, "--api-url", stack.url, "--user", "admin"],
                          env={**os.environ, "STELLA_API_PASSWORD": stack.passwords["admin"]},
                          capture_output=True, text=True, check=False)


def test_stella_promotion_abort_cancels_a_promotion_waiting_for_approval(stack):
    dag = "stella_promote__slowweb__gated"
    run = trigger(stack, f"{APP}-1", dag=dag)
    promo = wait_until(lambda: ledger(stack).find_promotion_by_run(dag, run), 60, "the promotion")
    wait_until(lambda: ledger(stack).get_promotion(promo.id).status == "awaiting_approval", 90, "awaiting approval")
    out = abort_cli(stack, promo.id, " ")
    assert out.returncode == 1 and "refused (HTTP 422)" in out.stdout, out.stdout + out.stderr
    out = abort_cli(stack, promo.id, "customer asked to hold the release")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"aborted: promotion {promo.id} was awaiting_approval, is now cancelled")
    led = ledger(stack)
    assert led.get_promotion(promo.id).status == "cancelled"
    [ev] = [e for e in led.evidence_for(promotion_id=promo.id) if e.type == "promotion"]
    assert ev.content["by"] == "admin" and ev.content["reason"] == "customer asked to hold the release"
    out = abort_cli(stack, promo.id, "again")
    assert out.returncode == 1 and "HTTP 409" in out.stdout
    # the parked approval sensor is woken by the abort: the run ends now, not at the approval deadline
    def run_state():
        st = call(stack, "GET", f"/api/v2/dags/{dag}/dagRuns/{run}").json()["state"]
        return st if st in ("success", "failed") else None
    assert wait_until(run_state, 60, f"run {run} to end") == "failed"


def test_marking_the_deploy_task_failed_mid_deploy_rolls_back_through_on_kill(stack, estate_lab):
    """A person stops the deployment in Airflow (marks the running task failed): Airflow sends
    SIGTERM, on_kill interrupts the deployment, which rolls both hosts back before the process exits."""
    before = running_digests(estate_lab)
    run = trigger(stack, f"{APP}-2")
    promo = wait_until(lambda: ledger(stack).find_promotion_by_run(DAG, run), 60, "the promotion")

    def deploying():
        deps = ledger(stack).deployments_for(promo.id)
        return deps and all(containers_of(estate_lab, deps[-1].id).values()) and deps[-1]
    deployment = wait_until(deploying, 90, "new containers on both hosts", every=0.2)
    r = call(stack, "PATCH", f"/api/v2/dags/{DAG}/dagRuns/{run}/taskInstances/deploy", json={"new_state": "failed"})
    assert r.status_code == 200, r.text
    led = ledger(stack)
    wait_until(lambda: led.get_promotion(promo.id).status in ("rolled_back", "failed"), 60, "the rollback")
    assert led.get_promotion(promo.id).status == "rolled_back"
    assert running_digests(estate_lab) == before
    assert containers_of(estate_lab, deployment.id) == {h: 0 for h in HOSTS}
    assert led.deploy_lock(APP, "dev") is None
    [rollback] = [e for e in led.evidence_for(promotion_id=promo.id) if e.type == "rollback"]
    assert "DeploymentInterrupted" in rollback.content["reason"]
