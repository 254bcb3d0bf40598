"""The `stella` command as a script sees it: stdout carries the answer and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.api.test_views import D1, D2, deployed, release

ROOT = Path(__file__).resolve().parents[3]
ESTATE = """
registries: [{host: reg.local}]
approver_groups: [{name: release-managers, users: [admin, bob]}]
apps: [{name: shop, components: [{name: web, repository: reg.local/demo/web}]}]
environments:
  - name: dev
    approvals: {required: 1, groups: [release-managers]}
    targets: [{name: dev-1, type: docker, connection: c1}, {name: dev-2, type: docker, connection: c2}]
"""


def stella(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STELLA_HOME": str(tmp_path / "home"),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")})}
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def test_status_prints_only_the_status_and_migrations_say_nothing_twice(tmp_path):
    (tmp_path / "estate.yaml").write_text(ESTATE)
    first = stella(tmp_path, "status", "--estate", "estate.yaml")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["shop                 dev          -"]
    assert "Running upgrade" in first.stderr           # a real migration is reported, on stderr
    again = stella(tmp_path, "status", "--estate", "estate.yaml")
    assert again.stdout == first.stdout and "alembic" not in again.stderr and "migration" not in again.stderr


def test_status_shows_each_host_and_marks_a_degraded_environment(tmp_path):
    (tmp_path / "estate.yaml").write_text(ESTATE)
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        old, new = release(ledger, "shop-1", "1.0.0", D1), release(ledger, "shop-2", "2.0.0", D2)
        deployed(ledger, old, {"dev-1": ("deployed", D1), "dev-2": ("deployed", D1)})
        deployed(ledger, new, {"dev-1": ("rolled_back", D1), "dev-2": ("failed", None)}, final=S.ROLLED_BACK,
                 error="dev-2: rollback failed")
    out = stella(tmp_path, "status", "--estate", "estate.yaml")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("shop                 dev          shop-1 (")
    assert lines[0].endswith("DEGRADED: dev-2 runs nothing (last result: failed)")
    assert lines[1].split()[:7] == ["dev-1", "shop-1,", "last", "result", "rolled_back,", "restored", "at"]
    assert lines[2].split()[:6] == ["dev-2", "runs", "nothing,", "last", "result", "failed"]


def test_why_says_how_a_promotion_ended_in_sentences(tmp_path):
    (tmp_path / "estate.yaml").write_text(ESTATE)
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        rel = release(ledger, "shop-1", "1.0.0", D1)
        failed = deployed(ledger, rel, {"dev-1": ("failed", None)}, final=S.FAILED,
                          error="Failed to establish connection to any given Docker hosts.")
    out = stella(tmp_path, "why", failed.id, "--estate", "estate.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"promotion {failed.id}: shop -> dev, status failed",
        ("  The deployment failed: Failed to establish connection to any given Docker hosts "
         "(on one of dev-1, dev-2, in dev).")]


def test_why_and_status_tell_where_a_canary_stands(tmp_path, monkeypatch):
    from tests.unit.promotion.test_canary_progress import waiting_canary

    fleet, promo = waiting_canary(tmp_path, monkeypatch)
    fleet.ledger.close()
    out = stella(tmp_path, "why", promo.id, "--estate", "estate.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"promotion {promo.id}: shop -> prod, status deploying",
        "  It is a canary (10 % -> 50 % -> 100 %), at step 2 of 3 (50 % of new requests to canary).",
        "  Step 1 (10 %): the router reported 10 % to the new version; its analysis passed (error-rate 0.01); "
        "advanced by stella.",
        "  Step 2 (50 %): the router reported 50 % to the new version; its analysis was inconclusive (error-rate "
        "no data); it waits for a human since 2026-03-02T09:05:00Z (Airflow's Required Actions: Advance, Hold or "
        "Roll back; no answer by 2026-03-02T09:15:00Z rolls back)."]
    status = stella(tmp_path, "status", "--estate", "estate.yaml")
    assert status.returncode == 0, status.stderr
    assert f"CANARY 50 %, WAITING FOR A HUMAN (promotion {promo.id})" in status.stdout.splitlines()[0]
