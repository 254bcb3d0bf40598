"""Issue 9 item 5 on S3: the evidence locker through Airflow's ObjectStoragePath and s3fs against
moto's S3 server (moto emulator, not AWS), credentials and endpoint from an Airflow Connection."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.moto import MotoServer
from stella_operators.cli.main import main
from stella_operators.evidence.keys import SigningKey
from stella_operators.evidence.locker import LockerTampered
from stella_operators.hooks.ledger import LedgerHook
from stella_operators.hooks.locker import EvidenceLockerHook

SECRET = "locker-secret-" + uuid.uuid4().hex  # must never show in a log line or an output
CONN_ID = "stella_locker_s3"


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto_server (moto emulator, not AWS) with its S3 on a free port."""
    server = MotoServer(tmp_path_factory.mktemp("moto-s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def bucket(moto_s3: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and the `aws` Connection the locker reads its credentials and endpoint from."""
    name = f"evidence-{uuid.uuid4().hex[:12]}"
    moto_s3.create_bucket(name)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({
        "conn_type": "aws", "login": "AKIDLOCKER", "password": SECRET,
        "extra": {"endpoint_url": moto_s3.url, "region_name": "us-east-1"}}))
    return name


def _s3(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")


def _keys(moto: MotoServer, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in _s3(moto).list_objects_v2(Bucket=bucket).get("Contents", []))


def test_put_get_verify_prune_on_s3(moto_s3: MotoServer, bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    locker = EvidenceLockerHook(f"s3://{bucket}/stella", CONN_ID, retention="checkpoint=30d").get_conn()
    old = datetime.now(UTC) - timedelta(days=60)
    locker.add("checkpoint", "20250101T000000.000000Z", [("cp.json", "checkpoint", b"old checkpoint", {})], now=old)
    locker.add("checkpoint", "20260101T000000.000000Z", [("cp.json", "checkpoint", b"new checkpoint", {})])
    rec = locker.add("promotion", "prm-1", [("evidence/deployment-1.json", "evidence", b'{"a": 1}', {})])
    address = rec.entries[0].address
    assert address == "sha256:" + hashlib.sha256(b'{"a": 1}').hexdigest()
    digest = address.split(":")[1]
    assert f"stella/objects/sha256/{digest[:2]}/{digest[2:]}" in _keys(moto_s3, bucket)
    assert "stella/index/promotion/prm-1.json" in _keys(moto_s3, bucket)
    assert locker.get(address) == b'{"a": 1}'
    assert locker.put(b'{"a": 1}') == address  # idempotent
    assert locker.verify() == []

    plan = locker.prune(dry_run=True)
    assert plan.indexes == ("checkpoint/20250101T000000.000000Z",)
    assert "stella/index/checkpoint/20250101T000000.000000Z.json" in _keys(moto_s3, bucket)  # dry run
    locker.prune(dry_run=False)
    old_digest = hashlib.sha256(b"old checkpoint").hexdigest()
    keys = _keys(moto_s3, bucket)
    assert "stella/index/checkpoint/20250101T000000.000000Z.json" not in keys
    assert f"stella/objects/sha256/{old_digest[:2]}/{old_digest[2:]}" not in keys
    assert "stella/index/checkpoint/20260101T000000.000000Z.json" in keys

    # someone with write access to the bucket changes a stored record
    _s3(moto_s3).put_object(Bucket=bucket, Key=f"stella/objects/sha256/{digest[:2]}/{digest[2:]}", Body=b'{"a": 2}')
    with pytest.raises(LockerTampered, match=f"CHANGED: object {address}"):  # despite s3fs's cached ETag
        locker.get(address)
    assert locker.verify()[0].startswith(f"CHANGED: object {address}")
    assert SECRET not in caplog.text


def test_cli_checkpoint_to_s3_catches_events_cut_after_the_database_copy_went_too(
        bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "ledger.db"
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    org = SigningKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY",
                       json.dumps({"conn_type": "generic", "password": org.to_pem().decode()}))
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "org.pub").write_bytes(org.public_pem())
    monkeypatch.setenv("STELLA_TRUST_DIR", str(tmp_path / "trust"))
    monkeypatch.setenv("STELLA_LOCKER_URL", f"s3://{bucket}/audit")
    monkeypatch.setenv("STELLA_LOCKER_CONN_ID", CONN_ID)
    ledger = LedgerHook().get_conn()
    for k in range(5):
        ledger.audit("alice", "promotion.transition", f"promotion:p{k}", {"step": k})
    assert main(["audit", "checkpoint", "--to-locker"]) == 0
    assert main(["evidence", "locker", "ls", "checkpoint"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[0].startswith("wrote checkpoint/") and f"to s3://{bucket}/audit: 5 events" in out[0]
    assert len(out) == 2 and out[1].startswith("checkpoint/") and out[1].endswith("\t1")

    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_events_no_delete")
    conn.execute("DELETE FROM audit_events WHERE seq >= 4")  # the audit.checkpoint note (seq 6) goes too
    conn.commit()
    conn.close()
    assert main(["audit", "verify", "--no-locker"]) == 0
    capfd.readouterr()
    assert main(["audit", "verify"]) == 1
    captured = capfd.readouterr()
    assert captured.out.startswith("CUT: events were cut off the end: the checkpoint of ")
    assert "saw 5 events ending at event 5" in captured.out and "the log has 3, the last is 3" in captured.out
    assert SECRET not in captured.out + captured.err
