"""`stella audit verify` on a real SQLite ledger that an attacker with the database file tampered with
(after dropping the append-only triggers, which the file's owner can do)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stella_operators.cli.main import main
from stella_operators.evidence.keys import SigningKey
from stella_operators.hooks.ledger import LedgerHook


@pytest.fixture()
def ledger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    ledger = LedgerHook().get_conn()
    for k in range(1, 7):
        ledger.audit("alice", "promotion.transition", f"promotion:p{k}", {"step": k})
    return ledger, path


def tamper(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute("DROP TRIGGER audit_events_no_delete")
        for sql in statements:
            db.execute(sql)
        db.commit()
    finally:
        db.close()


def test_intact_log_prints_count_and_head(ledger_file: tuple[Any, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ledger, _ = ledger_file
    head = ledger.audit_events()[-1].hash
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == f"ok: 6 events, head {head}\n"


def test_changed_and_removed_events_are_named_one_line_each(ledger_file: tuple[Any, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    ledger, path = ledger_file
    changed_hash = ledger.audit_events()[1].hash
    tamper(path, """UPDATE audit_events SET detail = '{"step": 2, "approved_by": "mallory"}' WHERE seq = 2""",
           "DELETE FROM audit_events WHERE seq = 4")
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2, out
    assert out[0] == (f"CHANGED: event 2 (promotion.transition promotion:p2): its content no longer hashes to "
                      f"its stored hash {changed_hash[:12]}")
    assert out[1].startswith("REMOVED: events between 3 and 5 are missing: event 5 links to ")


def test_swapped_events_are_named(ledger_file: tuple[Any, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, path = ledger_file
    tamper(path, "UPDATE audit_events SET seq = -1 WHERE seq = 3",
           "UPDATE audit_events SET seq = 3 WHERE seq = 4",
           "UPDATE audit_events SET seq = 4 WHERE seq = -1")
    assert main(["audit", "verify"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        ("REORDERED: events 3 and 4 are swapped: event 3 (promotion.transition promotion:p4) links to "
         "event 4 (promotion.transition promotion:p3), which comes after it")]


def test_events_cut_off_the_end_are_caught_by_a_signed_checkpoint(
        ledger_file: tuple[Any, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ledger, path = ledger_file
    org = SigningKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY",
                       json.dumps({"conn_type": "generic", "password": org.to_pem().decode()}))
    trust = tmp_path / "org.pub"
    trust.write_bytes(org.public_pem())
    checkpoint = tmp_path / "locker" / "audit-checkpoint.json"
    head = ledger.audit_events()[-1].hash
    assert main(["audit", "checkpoint", "-o", str(checkpoint)]) == 0
    assert capsys.readouterr().out == f"wrote {checkpoint}: 6 events, head {head}, signed by {org.key_id}\n"
    assert main(["audit", "checkpoint", "-o", str(checkpoint)]) == 2  # never overwritten
    ledger.audit("bob", "promotion.transition", "promotion:p7", {"step": 7})  # the log may grow
    assert main(["audit", "verify", "--checkpoint", str(checkpoint), "--trust", str(trust)]) == 0
    assert capsys.readouterr().out.endswith("; 1 checkpoint(s) hold\n")

    tamper(path, "DELETE FROM audit_events WHERE seq >= 5")
    assert main(["audit", "verify"]) == 0  # the chain alone cannot tell
    capsys.readouterr()
    assert main(["audit", "verify", "--checkpoint", str(checkpoint), "--trust", str(trust)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        (f"CUT: events were cut off the end: the checkpoint of {_at(checkpoint)} (signed by {org.key_id}) saw 6 "
         f"events ending at event 6 (head {head[:12]}); the log has 4, the last is 4")]
    other = tmp_path / "other.pub"
    other.write_bytes(SigningKey.generate().public_pem())
    assert main(["audit", "verify", "--checkpoint", str(checkpoint), "--trust", str(other)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"INVALID: checkpoint {checkpoint}: checkpoint signed by untrusted key {org.key_id}: not in the trust store"]


def _at(checkpoint: Path) -> str:
    env = json.loads(checkpoint.read_text())
    return str(json.loads(base64.b64decode(env["payload"]))["at"])
