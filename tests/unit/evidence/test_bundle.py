"""Promotion bundles: exported from a real (SQLite) ledger after a real two-host deployment, then
verified with nothing but the bundle and a trust store; every tampering is named."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest

from stella_operators.evidence import SigningKey
from stella_operators.evidence.bundle import BundleError, build_bundle, export_bundle, read_members, verify_bundle
from stella_operators.evidence.envelope import seal_evidence
from stella_operators.evidence.keys import TrustedKeys
from stella_operators.evidence.recorder import record_evidence
from stella_operators.promotion.service import deploy_promotion, verify_promotion
from tests.unit.promotion.fakes import T0, World, digest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def shipped(tmp_path):
    """A release sealed, promoted, deployed to two hosts and verified; plus another promotion."""
    world = World(tmp_path)
    release = world.release(1)
    record_evidence(world.ledger, world.key, "release", release, {"created_by": "ci-bot"})
    promo = world.approved(1)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    other = world.approved(2)  # a second release's promotion: none of its records belong in the bundle
    record_evidence(world.ledger, world.key, "approval", world.release(2), {"approver": "bob"},
                    promotion_id=other.id)
    trusted = TrustedKeys()
    trusted.add(world.key.public_pem())
    yield world, promo, trusted
    world.ledger.close()


def _rewrite(data: bytes, change) -> bytes:
    """A copy of the tar with `change(members)` applied (members: name -> bytes)."""
    members = read_members(data)
    change(members)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_a_bundle_holds_every_record_of_the_promotion_and_verifies_with_the_trust_store_alone(shipped):
    world, promo, trusted = shipped
    data = export_bundle(world.ledger, world.key, promo.id, exported_by="auditor-export")
    members = read_members(data)
    kinds = [name.split("-", 1)[1].removesuffix(".json") for name in members if name.startswith("records/")]
    assert kinds[0] == "release" and "deployment" in kinds
    assert len(kinds) == len(world.ledger.evidence_for(promotion_id=promo.id)) + 1  # + the release seal
    assert f"keys/{world.key.key_id.replace(':', '-')}.pub" in members
    report = verify_bundle(data, trusted)
    assert report.ok, report.lines()
    assert report.promotion_id == promo.id and len(report.records) == len(kinds)


def test_each_tampering_is_named(shipped):
    world, promo, trusted = shipped
    data = export_bundle(world.ledger, world.key, promo.id, exported_by="x")
    first = next(n for n in read_members(data) if n.startswith("records/"))

    def flip_byte(m):
        body = bytearray(m[first])
        body[body.index(b'"created_at"') + 20] ^= 1
        m[first] = bytes(body)

    report = verify_bundle(_rewrite(data, flip_byte), trusted)
    assert f"{first}: its content does not match the manifest's hash (changed)" in report.problems
    assert dict(report.records)[first] != "ok"

    report = verify_bundle(_rewrite(data, lambda m: m.pop(first)), trusted)
    assert report.problems == [f"{first}: listed in the manifest but missing from the bundle (removed)"]

    stranger = seal_evidence("approval", [("reg.local/shop/web", digest(1))], {"approver": "mallory"},
                             world.key, T0 + timedelta(hours=1))
    report = verify_bundle(_rewrite(data, lambda m: m.update({"records/999-approval.json":
                                                                 stranger.to_file_json().encode()})), trusted)
    assert report.problems == ["records/999-approval.json: in the bundle but not in the manifest (added)"]

    outsider = SigningKey.generate()  # a bundle re-signed by a key outside the trust store
    resigned = build_bundle(promotion={"id": promo.id, "environment": "prod"},
                            release=world.ledger.get_release(promo.release_id).model_dump(mode="json"),
                            records=world.ledger.evidence_for(promotion_id=promo.id), public_keys={},
                            key=outsider, exported_by="mallory")
    report = verify_bundle(resigned, trusted)
    assert report.problems == [f"MANIFEST.dsse.json: signed by untrusted key {outsider.key_id}: not in the trust store"]


def test_a_record_about_another_release_is_refused_even_in_a_well_signed_bundle(shipped):
    world, promo, trusted = shipped
    foreign = world.ledger.evidence_for(release_id=world.release(2).id)
    bundle = build_bundle(promotion={"id": promo.id, "environment": "prod"},
                          release=world.ledger.get_release(promo.release_id).model_dump(mode="json"),
                          records=[*world.ledger.evidence_for(promotion_id=promo.id), *foreign],
                          public_keys={}, key=world.key, exported_by="x")
    report = verify_bundle(bundle, trusted)
    bad = [(f, r) for f, r in report.records if r != "ok"]
    assert len(bad) == len(foreign) and all("not the digests of release shop-1.0.0" in r for _, r in bad)


def test_unsafe_or_foreign_tar_files_are_refused_without_touching_the_disk(tmp_path):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        link = tarfile.TarInfo("keys/evil.pub")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    with pytest.raises(BundleError, match="not a regular file"):
        verify_bundle(out.getvalue(), TrustedKeys())
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("../escape.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(BundleError, match="path leaves the bundle"):
        verify_bundle(out.getvalue(), TrustedKeys())
    with pytest.raises(BundleError, match="not a tar file"):
        verify_bundle(b"not a tar", TrustedKeys())


def test_export_then_verify_in_a_fresh_directory_with_no_ledger(shipped, tmp_path):
    """The CLI round trip: `stella evidence export PROMOTION -o bundle.tar` where the ledger is, then
    `stella evidence verify bundle.tar --trust DIR` on a "machine" with no ledger configured."""
    world, promo, _ = shipped
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(world.key.to_pem())
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STELLA_", "AIRFLOW_CONN_STELLA"))}
    here = {**base, "PYTHONPATH": str(ROOT), "STELLA_HOME": str(tmp_path / "home"),
            "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}),
            "AIRFLOW_CONN_STELLA_SIGNING_KEY": json.dumps({"conn_type": "generic",
                                                           "extra": {"key_file": str(key_file)}})}
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "evidence", "export", promo.id,
                          "-o", str(tmp_path / "bundle.tar")], env=here, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    elsewhere = tmp_path / "auditor"
    (elsewhere / "trust").mkdir(parents=True)
    (elsewhere / "trust" / "org.pub").write_bytes(world.key.public_pem())
    (elsewhere / "bundle.tar").write_bytes((tmp_path / "bundle.tar").read_bytes())
    check = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "evidence", "verify", "bundle.tar",
                            "--trust", "trust"], env={**base, "PYTHONPATH": str(ROOT),
                                                      "STELLA_HOME": str(elsewhere / "home")},
                           cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert all(line.startswith("ok: ") for line in lines)
    assert lines[-1].startswith(f"ok: bundle bundle.tar (promotion {promo.id}, ")
    assert not (elsewhere / "home").exists() or not any((elsewhere / "home").rglob("*.db"))  # no ledger was made
