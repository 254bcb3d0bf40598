"""Issue 9 item 5, what goes in: a promotion deployed and verified by the real services (SQLite ledger,
in-memory hosts) leaves every record, each host's sticker, deploy log and lock file in the locker;
copying again changes nothing; a locker that cannot be written loses no ledger record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stella_operators.evidence.bundle import export_bundle, read_members, verify_bundle
from stella_operators.evidence.envelope import verify_evidence
from stella_operators.evidence.keys import TrustedKeys
from stella_operators.evidence.locker import EvidenceLocker, LockerTampered
from stella_operators.evidence.locker_sync import archive_promotion, catch_up, host_files_of
from stella_operators.operators.locker import archive_quietly
from stella_operators.promotion.service import deploy_promotion, verify_promotion
from stella_operators.targets.contract import PreparedChange, TargetPlan
from tests.unit.promotion.fakes import FakeHost, World

LOCK = "compose.stella.lock.yml"


class LockFileHost(FakeHost):
    """A host whose prepare writes a lock file, as the compose target does."""

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        prepared = super().prepare(plan)
        image = f"x@{plan.components[0].component.digest}"
        prepared.host_files[LOCK] = f"# lock of {self.name}\nservices: {{web: {{image: {image}}}}}\n"
        prepared.log.append(f"wrote {LOCK}")
        return prepared


@pytest.fixture()
def world(tmp_path: Path):
    w = World(tmp_path)
    w.hosts = {"a": LockFileHost("a"), "b": LockFileHost("b")}
    yield w
    w.ledger.close()


def test_a_verified_promotion_leaves_records_stickers_logs_and_lock_files(world: World, tmp_path: Path) -> None:
    locker = EvidenceLocker(tmp_path / "locker", local=True)
    promo = world.approved(1)
    outcome = deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    index = archive_promotion(world.ledger, locker, promo.id, host_files=host_files_of(outcome))

    by_kind: dict[str, list] = {}
    for e in index.entries:
        by_kind.setdefault(e.kind, []).append(e)
    recorded = {r.id for r in world.ledger.evidence_for(promotion_id=promo.id)}
    assert {e.meta["id"] for e in by_kind["evidence"]} == recorded
    trusted = TrustedKeys()
    trusted.add(world.key.public_pem())
    assert all(verify_evidence(locker.get(e.address), trusted).ok for e in by_kind["evidence"])
    stickers = {e.meta["target"]: json.loads(locker.get(e.address)) for e in by_kind["sticker"]}
    assert sorted(stickers) == ["a", "b"]
    assert stickers["a"]["promotion_id"] == promo.id and stickers["a"]["target"] == "a"
    dep = outcome.deployment_id
    assert sorted(e.name for e in by_kind["lock_file"]) == [f"lock_files/{dep}/a/{LOCK}", f"lock_files/{dep}/b/{LOCK}"]
    assert locker.get(by_kind["lock_file"][0].address).decode().startswith("# lock of a\n")
    assert sorted(e.name for e in by_kind["deploy_log"]) == [f"deploy_logs/{dep}/a.log", f"deploy_logs/{dep}/b.log"]
    assert f"wrote {LOCK}" in locker.get(by_kind["deploy_log"][0].address).decode()

    # Copying again (the catch-up) writes nothing new and keeps the lock files already copied.
    assert archive_promotion(world.ledger, locker, promo.id) == index
    assert catch_up(world.ledger, locker) == []
    assert locker.verify() == []


def test_a_locker_that_cannot_be_written_loses_no_record(world: World, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    promo = world.approved(1)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    before = world.evidence_types(promo.id)
    monkeypatch.setenv("STELLA_LOCKER_URL", "file:///proc/no-locker-here")  # /proc refuses new folders
    assert archive_quietly(world.ledger, promo.id) is False
    assert world.evidence_types(promo.id) == before
    failed = world.ledger.audit_events(f"promotion:{promo.id}")[-1]
    assert failed.action == "locker.write_failed"
    assert "the stella_audit_checkpoint DAG copies it on its next run" in caplog.text
    # the catch-up copies it once the locker works again
    monkeypatch.setenv("STELLA_LOCKER_URL", (tmp_path / "locker").as_uri())
    assert archive_quietly(world.ledger, promo.id) is True
    locker = EvidenceLocker(tmp_path / "locker", local=True)
    assert catch_up(world.ledger, locker) == []
    assert {e.meta["id"] for e in locker.index("promotion", promo.id).entries if e.kind == "evidence"} == {
        r.id for r in world.ledger.evidence_for(promotion_id=promo.id)}


def test_the_bundle_carries_the_lockers_artifacts_and_still_verifies_offline(world: World, tmp_path: Path) -> None:
    locker = EvidenceLocker(tmp_path / "locker", local=True)
    promo = world.approved(1)
    outcome = deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    archive_promotion(world.ledger, locker, promo.id, host_files=host_files_of(outcome))
    data = export_bundle(world.ledger, world.key, promo.id, exported_by="auditor", locker=locker)
    trusted = TrustedKeys()
    trusted.add(world.key.public_pem())
    assert verify_bundle(data, trusted).ok
    members = read_members(data)
    dep = outcome.deployment_id
    assert members[f"artifacts/lock_files/{dep}/a/{LOCK}"].startswith(b"# lock of a\n")
    assert json.loads(members[f"artifacts/stickers/{dep}/b.version.json"])["target"] == "b"

    # a lock file changed in the locker is refused at export, not copied into a bundle
    obj = locker._object_path(next(e.address for e in locker.index("promotion", promo.id).entries
                                   if e.kind == "lock_file"))
    Path(str(obj)).write_text("# edited by hand\n")
    with pytest.raises(LockerTampered):
        export_bundle(world.ledger, world.key, promo.id, exported_by="auditor", locker=locker)
