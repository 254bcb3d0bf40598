"""The Airflow deployment the browser tests drive: a real api-server, scheduler, triggerer and
dag-processor (devstack.airflow_stack), the shipped DAG folder, a real registry holding the demo
image, and one Docker target that nobody listens on (deployments fail fast and name the host)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from devstack.airflow_stack import AirflowStack
from devstack.keys import evidence_key_env
from devstack.registry import free_port

ROOT = Path(__file__).resolve().parents[3]
# admin asks, bob approves, carol is not an approver, vera only looks.
USERS = {"admin": "admin", "bob": "op", "carol": "op", "vera": "viewer"}
APP = "shop"


def estate_yaml(registry_host_port: str) -> str:
    return textwrap.dedent(f"""
        registries: [{{host: "{registry_host_port}", scheme: http}}]
        approver_groups:
          - {{name: release-managers, users: [admin, bob]}}
        apps:
          - name: {APP}
            components:
              - {{name: web, repository: {registry_host_port}/demo/web}}
        environments:
          - name: dev
            requires: []
            approvals: {{required: 1, groups: [release-managers], separation_of_duties: true}}
            targets: [{{name: dev-1, type: docker, connection: stella_docker_dev_1}}]
            deploy_timeout_s: 60
    """)


def start_stack(workdir: Path, registry_host_port: str) -> AirflowStack:
    """Start the stack (caller stops it). The ledger is a SQLite file under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    estate = workdir / "estate.yaml"
    estate.write_text(estate_yaml(registry_host_port))
    dead_port = free_port()  # free now and nobody listens: "connection refused"
    env = {"STELLA_ESTATE": str(estate), "STELLA_HOME": str(workdir / "stella"),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(workdir / "ledger.db")}),
           "AIRFLOW_CONN_STELLA_DOCKER_DEV_1": json.dumps({"conn_type": "stella_docker_engine",
                                                           "host": "127.0.0.1", "port": dead_port}),
           **evidence_key_env(workdir)}  # a signing key and its public key as the trust root, as the demo
    stack = AirflowStack(home=workdir / "airflow", dags_folder=ROOT / "dags", users=USERS, env=env)
    stack.estate_path = estate
    stack.ledger_path = workdir / "ledger.db"
    stack.start()
    return stack
