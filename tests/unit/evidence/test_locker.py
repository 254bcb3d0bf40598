"""Issue 9 item 5: the evidence locker on a local folder -- content addressing, idempotence, tamper
detection on read, indexes a person can browse, retention with legal holds and a dry run."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stella_operators.evidence.locker import (
    EvidenceLocker,
    LockerError,
    LockerMissing,
    LockerTampered,
    parse_retention,
)

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture()
def locker(tmp_path: Path) -> EvidenceLocker:
    return EvidenceLocker(tmp_path / "locker", retention={"promotion": None, "checkpoint": 30}, local=True)


def test_put_stores_bytes_under_their_sha256(locker: EvidenceLocker, tmp_path: Path) -> None:
    data = b'{"record": 1}\n'
    digest = hashlib.sha256(data).hexdigest()
    assert locker.put(data) == f"sha256:{digest}"
    stored = tmp_path / "locker" / "objects" / "sha256" / digest[:2] / digest[2:]
    assert stored.read_bytes() == data
    assert locker.get(f"sha256:{digest}") == data
    assert locker.addresses() == [f"sha256:{digest}"]


def test_put_is_idempotent_and_never_rewrites_an_object(locker: EvidenceLocker, tmp_path: Path) -> None:
    address = locker.put(b"same bytes")
    obj = next(p for p in (tmp_path / "locker" / "objects").rglob("*") if p.is_file())
    os.utime(obj, ns=(1_000_000_000, 1_000_000_000))  # a rewrite would move the modification time
    assert locker.put(b"same bytes") == address
    assert obj.stat().st_mtime_ns == 1_000_000_000
    assert locker.addresses() == [address]


def test_a_changed_object_is_reported_with_its_address_on_read(locker: EvidenceLocker, tmp_path: Path) -> None:
    address = locker.put(b"approved by alice")
    obj = next(p for p in (tmp_path / "locker" / "objects").rglob("*") if p.is_file())
    obj.write_bytes(b"approved by mallory")
    with pytest.raises(LockerTampered) as exc:
        locker.get(address)
    assert str(exc.value) == (f"CHANGED: object {address} now hashes to "
                              f"sha256:{hashlib.sha256(b'approved by mallory').hexdigest()} (its bytes were altered "
                              "after they were stored)")
    assert locker.verify() == [str(exc.value)]


def test_missing_object_and_dangling_index_entry_are_named(locker: EvidenceLocker, tmp_path: Path) -> None:
    locker.add("promotion", "prm-1", [("evidence/deployment.json", "evidence", b"rec", {})])
    address = f"sha256:{hashlib.sha256(b'rec').hexdigest()}"
    obj = next(p for p in (tmp_path / "locker" / "objects").rglob("*") if p.is_file())
    obj.unlink()
    with pytest.raises(LockerMissing, match=f"MISSING: no object {address}"):
        locker.get(address)
    assert locker.verify() == [f"MISSING: index promotion/prm-1 lists evidence/deployment.json at {address}, "
                               "which is not in the locker"]


def test_index_lists_files_for_a_person_and_is_idempotent(locker: EvidenceLocker, tmp_path: Path) -> None:
    files = [("evidence/release-ab.json", "evidence", b"seal", {"id": "sha256:ab"}),
             ("deploy_logs/dep-1/web-1.log", "deploy_log", b"pulled web", {"target": "web-1"})]
    first = locker.add("promotion", "prm-1", files, now=T0)
    again = locker.add("promotion", "prm-1", files, now=T0 + timedelta(hours=1))
    assert again == first  # nothing new: the index is not rewritten (updated_at unchanged)
    doc = json.loads((tmp_path / "locker" / "index" / "promotion" / "prm-1.json").read_text())
    assert [(e["name"], e["kind"], e["size"]) for e in doc["entries"]] == [
        ("deploy_logs/dep-1/web-1.log", "deploy_log", 10), ("evidence/release-ab.json", "evidence", 4)]
    grown = locker.add("promotion", "prm-1", [("evidence/deployment-cd.json", "evidence", b"dep", {})],
                       now=T0 + timedelta(hours=2))
    assert len(grown.entries) == 3 and grown.created_at == first.created_at != grown.updated_at
    assert [f"{i.kind}/{i.subject}" for i in locker.indexes()] == ["promotion/prm-1"]


@pytest.mark.parametrize("subject", ["../escape", "a/b", "", ".hidden"])
def test_subjects_that_are_not_one_file_name_are_refused(locker: EvidenceLocker, subject: str) -> None:
    with pytest.raises(LockerError, match="cannot name a locker file"):
        locker.add("promotion", subject, [])


def test_retention_rules_parse_with_clear_errors() -> None:
    assert parse_retention("checkpoint=90d, promotion=forever,deploy=7") == {
        "promotion": None, "release": None, "checkpoint": 90, "deploy": 7}
    with pytest.raises(LockerError, match="expected KIND=forever or KIND=<days>d"):
        parse_retention("checkpoint=soon")


def _checkpoints(locker: EvidenceLocker) -> None:
    """Three checkpoints 90, 60 and 1 days old; the oldest two share one file with a promotion."""
    shared = ("shared.json", "evidence", b"shared record", {})
    locker.add("checkpoint", "20251012T120000Z", [shared, ("cp.json", "checkpoint", b"cp-old", {})],
               now=T0 - timedelta(days=90))
    locker.add("checkpoint", "20251111T120000Z", [("cp.json", "checkpoint", b"cp-mid", {})],
               now=T0 - timedelta(days=60))
    locker.add("checkpoint", "20260109T120000Z", [("cp.json", "checkpoint", b"cp-new", {})],
               now=T0 - timedelta(days=1))
    locker.add("promotion", "prm-1", [shared], now=T0 - timedelta(days=400))  # kept forever


def test_prune_dry_run_says_what_would_go_and_deletes_nothing(locker: EvidenceLocker) -> None:
    _checkpoints(locker)
    before = (locker.indexes(), locker.addresses())
    plan = locker.prune(dry_run=True, now=T0)
    assert plan.lines(dry_run=True) == [
        "would delete index checkpoint/20251012T120000Z", "would delete index checkpoint/20251111T120000Z",
        f"would delete object sha256:{hashlib.sha256(b'cp-mid').hexdigest()}",
        f"would delete object sha256:{hashlib.sha256(b'cp-old').hexdigest()}"]
    assert (locker.indexes(), locker.addresses()) == before


def test_prune_keeps_forever_kinds_shared_objects_holds_and_the_newest_checkpoint(locker: EvidenceLocker) -> None:
    _checkpoints(locker)
    locker.hold("checkpoint", "20251111T120000Z", by="auditor", reason="case 42")
    plan = locker.prune(dry_run=False, now=T0 + timedelta(days=400))  # every checkpoint expired by now
    assert plan.indexes == ("checkpoint/20251012T120000Z",)
    assert plan.held == ("checkpoint/20251111T120000Z",)
    assert [f"{i.kind}/{i.subject}" for i in locker.indexes()] == [
        "checkpoint/20251111T120000Z", "checkpoint/20260109T120000Z", "promotion/prm-1"]
    shared = f"sha256:{hashlib.sha256(b'shared record').hexdigest()}"
    assert locker.get(shared) == b"shared record"  # the promotion still lists it
    assert f"sha256:{hashlib.sha256(b'cp-old').hexdigest()}" not in locker.addresses()
    assert locker.verify() == []
    assert locker.release_hold("checkpoint", "20251111T120000Z")
    assert locker.prune(dry_run=False, now=T0 + timedelta(days=400)).indexes == ("checkpoint/20251111T120000Z",)


def test_prune_never_deletes_an_object_no_index_lists(locker: EvidenceLocker) -> None:
    address = locker.put(b"written, index not yet")  # a writer between its put and its index write
    locker.add("checkpoint", "20251012T120000Z", [("cp.json", "checkpoint", b"old", {})], now=T0 - timedelta(days=90))
    locker.add("checkpoint", "20260109T120000Z", [("cp.json", "checkpoint", b"new", {})], now=T0)
    locker.prune(dry_run=False, now=T0)
    assert address in locker.addresses()


def test_a_hold_needs_a_reason(locker: EvidenceLocker) -> None:
    with pytest.raises(LockerError, match="needs a reason"):
        locker.hold("promotion", "prm-1", by="auditor", reason=" ")
