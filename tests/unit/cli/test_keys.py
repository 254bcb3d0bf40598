"""`stella keys rotate | revoke | list` against a trust directory, checked with `stella evidence verify`:
rotation keeps old evidence verifiable; revocation fails what the key signed after its revocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from stella_operators.evidence import SigningKey
from stella_operators.evidence.envelope import seal_evidence

ROOT = Path(__file__).resolve().parents[3]
SUBJECT = [("shop", "sha256:" + "1" * 64)]


def stella(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STELLA_", "AIRFLOW_CONN_STELLA"))}
    env.update({"PYTHONPATH": str(ROOT), "STELLA_HOME": str(tmp_path / "home"),
                "AIRFLOW_CONN_STELLA_SIGNING_KEY": json.dumps(
                    {"conn_type": "generic", "extra": {"key_file": str(tmp_path / "signing.pem")}})})
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def _evidence(tmp_path: Path, key: SigningKey, name: str, at: datetime) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(seal_evidence("approval", SUBJECT, {"approver": "bob"}, key, at).to_file_json())
    return str(path)


def test_rotate_then_revoke_the_retired_key_from_a_time_on(tmp_path):
    trust = tmp_path / "trust"
    trust.mkdir()
    old = SigningKey.generate()
    (tmp_path / "signing.pem").write_bytes(old.to_pem())
    (trust / "org.pub").write_bytes(old.public_pem())
    early = _evidence(tmp_path, old, "early", datetime(2026, 10, 1, tzinfo=UTC))
    late = _evidence(tmp_path, old, "late", datetime(2026, 11, 20, tzinfo=UTC))

    rotated = stella(tmp_path, "keys", "rotate", "--trust", str(trust))
    assert rotated.returncode == 0, rotated.stderr
    new_id = rotated.stdout.strip()
    assert new_id.startswith("ed25519:") and new_id != old.key_id and rotated.stdout.count("\n") == 1
    assert SigningKey.from_pem((tmp_path / "signing.pem").read_bytes()).key_id == new_id  # old private key gone
    assert oct((tmp_path / "signing.pem").stat().st_mode & 0o777) == "0o600"
    assert "retired " + old.key_id in rotated.stderr
    ok = stella(tmp_path, "evidence", "verify", early, late, "--trust", str(trust))
    assert ok.returncode == 0, ok.stdout + ok.stderr  # retired, not revoked: everything it signed verifies

    revoked = stella(tmp_path, "keys", "revoke", old.key_id, "--reason", "laptop stolen",
                     "--at", "2026-11-15T00:00:00Z", "--trust", str(trust))
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == old.key_id + "\n" and "warning" not in revoked.stderr  # not the signing key any more
    check = stella(tmp_path, "evidence", "verify", early, late, "--trust", str(trust))
    assert check.returncode == 1
    lines = check.stdout.splitlines()
    assert lines[0].startswith(f"ok: {early}")
    assert lines[1] == (f"INVALID: {late}: signed at 2026-11-20T00:00:00Z by a revoked key: key {old.key_id} "
                        "was revoked at 2026-11-15T00:00:00+00:00 (laptop stolen)")

    listed = stella(tmp_path, "keys", "list", "--trust", str(trust), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["key_id"]: r for r in json.loads(listed.stdout)}
    assert rows[old.key_id]["status"] == "revoked" and rows[old.key_id]["reason"] == "laptop stolen"
    assert rows[new_id] == {**rows[new_id], "status": "trusted", "signing": True}
    assert not rows[old.key_id]["signing"]


def test_revoking_refuses_unknown_keys_bad_times_and_warns_about_the_signing_key(tmp_path):
    trust = tmp_path / "trust"
    trust.mkdir()
    key = SigningKey.generate()
    (tmp_path / "signing.pem").write_bytes(key.to_pem())
    (trust / "org.pub").write_bytes(key.public_pem())
    unknown = stella(tmp_path, "keys", "revoke", "ed25519:0000000000000000", "--reason", "x", "--trust", str(trust))
    assert unknown.returncode == 2 and key.key_id in unknown.stderr and unknown.stdout == ""
    naive = stella(tmp_path, "keys", "revoke", key.key_id, "--reason", "x", "--at", "2026-11-15T00:00:00",
                   "--trust", str(trust))
    assert naive.returncode == 2 and "no time zone" in naive.stderr
    blank = stella(tmp_path, "keys", "revoke", key.key_id, "--reason", "  ", "--trust", str(trust))
    assert blank.returncode == 2 and not (trust / "revocations.json").exists()
    current = stella(tmp_path, "keys", "revoke", key.key_id, "--reason", "leaked", "--trust", str(trust))
    assert current.returncode == 0 and "run `stella keys rotate` now" in current.stderr
    no_dir = stella(tmp_path, "keys", "list")
    assert no_dir.returncode == 2 and "--trust DIR or STELLA_TRUST_DIR" in no_dir.stderr
