"""Remote sites, nothing mocked: a real Airflow (api-server, scheduler with LocalExecutor and
Airflow's own EdgeExecutor, triggerer, dag-processor) on the control plane; a real Edge worker
(provider apache-airflow-providers-edge3) in its own network namespace, the only place from which
the site's dockerd host can be reached; a promotion of a release into the site's environment.

The control plane triggers through the REST API and decides (request, gates, approval) with its
own executor; the deploy and verify tasks are pulled by the site's Edge worker over HTTP and run
there (devstack/sites.py draws the network).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import docker
from devstack.estate_lab import HEALTH
from devstack.keys import evidence_key_env
from devstack.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root
USERS = {"admin": "admin", "olga": "op"}
EXECUTORS = "LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor"


@pytest.fixture(scope="module")
def remote_site(tmp_path_factory):
    from devstack.hosts import missing_prerequisites

    if os.geteuid() != 0:
        pytest.skip("the remote-site lab needs root (network namespaces, dockerd); CI runs as root")
    missing = missing_prerequisites()
    if missing:
        pytest.skip("lab prerequisites missing: " + "; ".join(missing))
    from devstack.sites import RemoteSiteLab

    lab = RemoteSiteLab(tmp_path_factory.mktemp("site"))
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def estate_yaml(site) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "{site.registry_host}", scheme: http}}]
        apps:
          - name: kiosk
            components:
              - name: web
                repository: {site.repository}
                health: {{command: {json.dumps(HEALTH)}, interval_s: 0.5, timeout_s: 2, retries: 3}}
        environments:
          - name: plant
            targets: [{{name: plant-1, type: docker, connection: stella_docker_plant_1, site: plant-a}}]
    """)


@pytest.fixture(scope="module")
def stack(remote_site, tmp_path_factory):
    from devstack.airflow_stack import AirflowStack, free_port

    work = tmp_path_factory.mktemp("remote-site")
    estate = work / "estate.yaml"
    estate.write_text(estate_yaml(remote_site))
    port = free_port("0.0.0.0")
    api = f"http://{remote_site.control_ip}:{port}"
    host = remote_site.site_hosts["plant-1"]
    env = {"STELLA_ESTATE": str(estate), "STELLA_HOME": str(work / "stella"),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(work / "ledger.db")}),
           "AIRFLOW_CONN_STELLA_DOCKER_PLANT_1": json.dumps(
               {"conn_type": "stella_docker_engine", "host": host.ip, "port": 2375}),
           "AIRFLOW__EDGE__API_ENABLED": "True",
           "AIRFLOW__EDGE__API_URL": f"{api}/edge_worker/v1/rpcapi",
           "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "1",
           "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": "5",
           **evidence_key_env(work / "evidence")}
    s = AirflowStack(home=work / "airflow", dags_folder=ROOT / "dags", users=USERS, env=env, port=port,
                     listen="0.0.0.0", executor=EXECUTORS)
    s.start()
    worker = None
    try:
        # The site's worker: in the gateway namespace, reaching the control plane by its bridge address.
        log = open(work / "edge-worker.log", "ab")
        worker = subprocess.Popen(
            remote_site.in_gateway(sys.executable, "-m", "airflow", "edge", "worker", "-q", "plant-a", "-c", "2",
                                   "-H", "plant-a-worker"),
            env=s.environ(AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{api}/execution/"),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        s.client = httpx.Client(base_url=s.url, timeout=30)
        s.tokens = {u: s.client.post("/auth/token", json={"username": u, "password": p}).json()["access_token"]
                    for u, p in s.passwords.items()}
        s.wait_for_dag("stella_promote__kiosk__plant", s.tokens["admin"])
        s.worker_log = work / "edge-worker.log"
        s.ledger_url = f"sqlite:///{work / 'ledger.db'}"
        yield s
    finally:
        if worker is not None:
            for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
                try:
                    os.killpg(worker.pid, sig)
                    worker.wait(timeout=wait)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue
        s.stop()


def call(stack, method, url, user="admin", **kw):
    return stack.client.request(method, url, headers={"Authorization": f"Bearer {stack.tokens[user]}"}, **kw)


def run_to_end(stack, dag_id, conf, timeout_s=180):
    r = call(stack, "POST", f"/api/v2/dags/{dag_id}/dagRuns", "olga", json={"logical_date": None, "conf": conf})
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    state = wait_until(
        lambda: (st := call(stack, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"])
        in ("success", "failed") and st, timeout_s, f"{dag_id} to finish")
    return run_id, state


def test_a_promotion_into_a_remote_site_is_deployed_by_the_sites_edge_worker(stack, remote_site):
    host = remote_site.site_hosts["plant-1"]
    # The control plane has no way into the site: only the gateway namespace (the worker) does.
    with pytest.raises(OSError):
        socket.create_connection((host.ip, 2375), timeout=2).close()

    digest = remote_site.push_web("1.0.0")
    _, state = run_to_end(stack, "stella_release__kiosk", {"name": "kiosk-1.0.0", "web": "1.0.0"})
    assert state == "success"
    run_id, state = run_to_end(stack, "stella_promote__kiosk__plant",
                               {"release": "kiosk-1.0.0", "reason": "first rollout at plant A"})
    tis = {t["task_id"]: t for t in call(
        stack, "GET", f"/api/v2/dags/stella_promote__kiosk__plant/dagRuns/{run_id}/taskInstances").json()[
        "task_instances"]}
    assert state == "success", {k: t["state"] for k, t in tis.items()}
    for step in ("deploy", "verify"):
        assert tis[step]["queue"] == "plant-a", tis[step]
        assert "EdgeExecutor" in (tis[step]["executor"] or ""), tis[step]
    for step in ("request", "gates"):
        assert tis[step]["queue"] != "plant-a" and "EdgeExecutor" not in (tis[step]["executor"] or "")
    assert "stella_promote__kiosk__plant" in stack.worker_log.read_text(errors="replace")

    # The site host runs the release (looked at through its unix socket: no network needed).
    engine = docker.DockerClient(base_url=f"unix://{host.socket}")
    try:
        running = [c for c in engine.containers.list(filters={"label": "stella.app=kiosk"})]
        assert [c.labels["stella.release.name"] for c in running] == ["kiosk-1.0.0"]
        assert running[0].image.attrs["RepoDigests"][0].endswith(digest)
    finally:
        engine.close()

    from stella_operators.ledger import Ledger

    promotion = Ledger.open(stack.ledger_url).find_promotion_by_run("stella_promote__kiosk__plant", run_id)
    assert promotion.status == "deployed"  # terminal: deployed and verified on the site host
