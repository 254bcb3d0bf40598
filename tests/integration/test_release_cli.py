"""`stella release create` goes through the Airflow API server as the logged-in user: the creator
that separation of duties relies on is the Airflow login, never a flag. Real api-server,
scheduler, dag-processor and triggerer (devstack.airflow_stack), real registry, the CLI as a user
runs it."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stella_operators.dag_builder.render import render_dag_files

ROOT = Path(__file__).resolve().parents[2]
USERS = {"admin": "admin", "alice": "op", "vera": "viewer"}


@pytest.fixture(scope="module")
def stack(registry, image_factory, tmp_path_factory):
    from devstack.airflow_stack import AirflowStack

    digest = image_factory("cli/web", "1.0.0")
    work = tmp_path_factory.mktemp("release-cli")
    estate = work / "estate.yaml"
    estate.write_text(textwrap.dedent(f"""
        registries: [{{host: "{registry.host_port}", scheme: http}}]
        apps:
          - name: kiosk
            components: [{{name: web, repository: {registry.host_port}/cli/web}}]
        environments:
          - name: dev
            targets: [{{name: dev-1, type: docker, connection: c_dev}}]
    """))
    render_dag_files(work / "dags", 1)
    ledger_path = work / "ledger.db"
    env = {"STELLA_ESTATE": str(estate), "STELLA_HOME": str(work / "stella"), "PYTHONPATH": str(ROOT),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(ledger_path)})}
    s = AirflowStack(home=work / "airflow", dags_folder=work / "dags", users=USERS, env=env)
    s.start()
    try:
        import httpx

        token = httpx.post(f"{s.url}/auth/token", json={"username": "admin", "password": s.passwords["admin"]},
                           timeout=30).json()["access_token"]
        s.wait_for_dag("stella_release__kiosk", token)
        s.estate_path, s.ledger_path, s.digest = estate, ledger_path, digest
        yield s
    finally:
        s.stop()


def stella(stack, *args, user: str, password: str | None = None, timeout: float = 240):
    env = {**os.environ, "STELLA_API_PASSWORD": password or stack.passwords[user], "PYTHONPATH": str(ROOT),
           "STELLA_ESTATE": str(stack.estate_path)}
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "release", "create",
                           "--api-url", stack.url, "--user", user, *args],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_release_create_records_the_logged_in_user_as_creator(stack):
    from stella_operators.ledger import Ledger

    r = stella(stack, "--app", "kiosk", "--name", "kiosk-1.0.0", "web=1.0.0", user="alice")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["name"] == "kiosk-1.0.0" and out["digests"] == {"web": stack.digest}
    release = Ledger.open(f"sqlite:///{stack.ledger_path}").get_release(out["release_id"])
    assert release.created_by == "alice"


def test_the_creator_cannot_be_chosen(stack):
    # naming someone else means logging in as them: without their password it is refused
    r = stella(stack, "--app", "kiosk", "--name", "kiosk-1.0.1", "web=1.0.0", user="admin",
               password=stack.passwords["alice"])
    assert r.returncode == 2 and "login as admin failed: HTTP 401" in r.stderr
    r = stella(stack, "--app", "kiosk", "--name", "kiosk-1.0.1", "--created-by", "bob", "web=1.0.0", user="alice")
    assert r.returncode == 2 and "unrecognized arguments: --created-by" in r.stderr


def test_a_viewer_may_not_cut_a_release(stack):
    r = stella(stack, "--app", "kiosk", "--name", "kiosk-1.0.2", "web=1.0.0", user="vera")
    assert r.returncode == 1 and "refused (HTTP 403)" in r.stderr


def test_a_failed_release_run_is_reported(stack):
    r = stella(stack, "--app", "kiosk", "--name", "kiosk-9.9.9", "web=no-such-tag", user="alice")
    assert r.returncode == 1 and " failed: the create_release task log in Airflow says why" in r.stderr


def promote(stack, *args, user: str, timeout: float = 300):
    env = {**os.environ, "STELLA_API_PASSWORD": stack.passwords[user], "PYTHONPATH": str(ROOT),
           "STELLA_ESTATE": str(stack.estate_path)}
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "promote", *args,
                           "--api-url", stack.url, "--user", user],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_promote_requests_as_the_logged_in_user_and_wait_reports_the_end(stack):
    """`stella promote` through the API server: the requester is the login (so SoD holds); --wait follows the
    run to its end (here the deploy fails: the target's connection does not exist) and says how to ask why."""
    from stella_operators.ledger import Ledger

    made = stella(stack, "--app", "kiosk", "--name", "kiosk-2.0.0", "web=1.0.0", user="alice")
    assert made.returncode == 0, made.stderr
    r = promote(stack, "kiosk", "dev", "--release", "kiosk-2.0.0", "--reason", "first rollout", user="alice")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)  # stdout is the answer alone
    assert out["dag_id"] == "stella_promote__kiosk__dev" and out["state"] == "requested"
    promotion = Ledger.open(f"sqlite:///{stack.ledger_path}").get_promotion(out["promotion_id"])
    assert promotion.requested_by == "alice" and promotion.reason == "first rollout"

    r = promote(stack, "kiosk", "dev", "--release", "kiosk-2.0.0", "--reason", "again", "--wait", user="alice")
    assert r.returncode == 1, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "failed" and f"stella why {out['promotion_id']}" in r.stderr


def test_promote_refuses_viewers_unknown_environments_and_blank_reasons(stack):
    r = promote(stack, "kiosk", "dev", "--release", "kiosk-1.0.0", "--reason", "viewer tries", user="vera")
    assert r.returncode == 1 and "refused (HTTP 403)" in r.stderr and r.stdout == ""
    r = promote(stack, "kiosk", "prod", "--release", "kiosk-1.0.0", "--reason", "no such env", user="alice")
    assert r.returncode == 2 and "its environments: dev" in r.stderr
    r = promote(stack, "kiosk", "dev", "--release", "kiosk-1.0.0", "--reason", "   ", user="alice")
    assert r.returncode == 2 and "white space alone is refused" in r.stderr
