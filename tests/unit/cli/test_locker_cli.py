"""Issue 9 items 3 and 5 through the CLI a person uses: `stella audit checkpoint --to-locker`, then
`stella audit verify` catching events cut off the end of a real SQLite ledger even when the
attacker also cut the database's note of the checkpoint; `stella evidence locker ls|get|verify|prune`
on a local locker (stdout only the answer, errors on stderr)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from stella_operators.cli.main import main
from stella_operators.evidence.keys import SigningKey
from stella_operators.hooks.ledger import LedgerHook


@pytest.fixture()
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path, SigningKey, Path]:
    """A SQLite ledger with 6 audit events, a signing key, its trust file, a locker folder of its own."""
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    org = SigningKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY",
                       json.dumps({"conn_type": "generic", "password": org.to_pem().decode()}))
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "org.pub").write_bytes(org.public_pem())
    monkeypatch.setenv("STELLA_TRUST_DIR", str(trust))
    locker = tmp_path / "locker"
    monkeypatch.setenv("STELLA_LOCKER_URL", locker.as_uri())
    ledger = LedgerHook().get_conn()
    for k in range(1, 7):
        ledger.audit("alice", "promotion.transition", f"promotion:p{k}", {"step": k})
    return ledger, path, org, locker


def cut_from(path: Path, seq: int) -> None:
    """What an attacker with the database file does: drop the append-only triggers, delete the end."""
    db = sqlite3.connect(path)
    try:
        db.execute("DROP TRIGGER audit_events_no_delete")
        db.execute(f"DELETE FROM audit_events WHERE seq >= {seq}")
        db.commit()
    finally:
        db.close()


def test_locker_checkpoint_catches_a_cut_the_database_copy_cannot(
        estate: tuple[Any, Path, SigningKey, Path], capsys: pytest.CaptureFixture[str]) -> None:
    ledger, path, org, _ = estate
    head = ledger.audit_events()[-1].hash
    assert main(["audit", "checkpoint", "--to-locker"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote checkpoint/") and out.endswith(f": 6 events, head {head}, signed by {org.key_id}\n")
    note = ledger.audit_events()[-1]  # the database's own copy of the checkpoint
    assert (note.seq, note.action, note.detail["events"], note.detail["head"]) == (7, "audit.checkpoint", 6, head)
    ledger.audit("bob", "promotion.transition", "promotion:p8", {"step": 8})
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.endswith("; 1 checkpoint(s) hold\n")

    cut_from(path, 5)  # events 5..8 go, the audit.checkpoint note with them
    assert [e.seq for e in ledger.audit_events()] == [1, 2, 3, 4]
    assert main(["audit", "verify", "--no-locker"]) == 0  # the chain alone cannot tell
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("CUT: events were cut off the end: the checkpoint of ")
    assert lines[0].endswith(f"saw 6 events ending at event 6 (head {head[:12]}); the log has 4, the last is 4")


def test_a_changed_locker_checkpoint_is_reported_not_skipped(
        estate: tuple[Any, Path, SigningKey, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, locker = estate
    assert main(["audit", "checkpoint", "--to-locker"]) == 0
    capsys.readouterr()
    obj = next(p for p in (locker / "objects").rglob("*") if p.is_file())
    obj.write_bytes(obj.read_bytes().replace(b'"signatures"', b'"signatures" '))
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID: the locker's newest checkpoint: CHANGED: object sha256:")


def test_locker_ls_get_verify_prune(estate: tuple[Any, Path, SigningKey, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, locker = estate
    assert main(["audit", "checkpoint", "--to-locker"]) == 0
    capsys.readouterr()
    assert main(["evidence", "locker", "ls"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    ref, updated, files = line.split("\t")
    assert ref.startswith("checkpoint/") and updated.endswith("Z") and files == "1"
    assert main(["evidence", "locker", "ls", ref]) == 0
    address, size, kind, name = capsys.readouterr().out.rstrip("\n").split("\t")
    assert (kind, name) == ("checkpoint", "audit-checkpoint.dsse.json")

    out = tmp_path / "cp.json"
    assert main(["evidence", "locker", "get", f"{ref}:{name}", "-o", str(out)]) == 0
    assert len(out.read_bytes()) == int(size) and json.loads(out.read_bytes())["payloadType"].endswith("+json")
    assert main(["evidence", "locker", "verify"]) == 0
    assert capsys.readouterr().out == f"ok: 1 objects, 1 indexes in {locker.as_uri()}\n"
    assert main(["evidence", "locker", "prune", "--dry-run"]) == 0
    assert capsys.readouterr().out == "nothing to prune\n"

    obj = next(p for p in (locker / "objects").rglob("*") if p.is_file())
    obj.write_bytes(b"{}")
    assert main(["evidence", "locker", "get", address]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"stella: CHANGED: object {address} now hashes to ")
    assert main(["evidence", "locker", "verify"]) == 1
    assert capsys.readouterr().out.startswith(f"CHANGED: object {address}")


def test_locker_errors_go_to_stderr_with_the_fix(estate: tuple[Any, Path, SigningKey, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evidence", "locker", "ls", "--locker", "ftp://host/x"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("stella: evidence locker URL 'ftp://host/x': expected file:///PATH or "
                            "s3://BUCKET/PREFIX (STELLA_LOCKER_URL)\n")
    assert main(["evidence", "locker", "ls", "--locker", "s3://key:secret@bucket/p"]) == 2
    err = capsys.readouterr().err
    assert "secret" not in err and "put them in the Airflow Connection" in err
    assert main(["evidence", "locker", "get", "promotion/none:x"]) == 2
    assert "names no file" in capsys.readouterr().err
    assert main(["audit", "checkpoint"]) == 2
    assert capsys.readouterr().err == "stella: say where the checkpoint goes: -o FILE and/or --to-locker\n"
