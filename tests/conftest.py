"""Shared test set-up: real peers (registry, dockerd hosts, PostgreSQL) come from tests/fixtures."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Airflow reads AIRFLOW_HOME at import: give the test process its own, before anything imports it.
if "AIRFLOW_HOME" not in os.environ:
    import tempfile

    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="stella-test-airflow-")
# Real users for REST tests (simple auth manager): roles as Airflow defines them.
os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                      "admin:admin,alice:op,bob:op,carol:op,dave:op,vera:viewer")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("STELLA_HOME", os.path.join(os.environ["AIRFLOW_HOME"], "stella"))

pytest_plugins = [
    "tests.fixtures.leak_guard",   # first: marks every process the suite starts, checks nothing is left
    "tests.fixtures.registry_peer",
    "tests.fixtures.docker_peer",
    "tests.fixtures.postgres_peer",
    "tests.fixtures.airflow_env",
    "tests.fixtures.estate_lab",
    "tests.fixtures.compose_lab",
    "tests.fixtures.ssh_peer",
    "tests.fixtures.cloud_peers",
    "tests.fixtures.approval_stack",
    "tests.fixtures.lab_lifetime",  # stops a session lab after its last user
    "tests.fixtures.shards",        # STELLA_TEST_SHARD=labs|peers (scripts/test runs both at once)
]
