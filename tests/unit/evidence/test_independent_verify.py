"""Issue 9 item 7: our DSSE envelopes verify with a library we did not write (securesystemslib),
and the third-party command in the README (scripts/verify_independent.py) is itself run here."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined,unused-ignore]  # not in its __all__

from stella_operators.cli.main import main
from stella_operators.evidence import SigningKey
from stella_operators.evidence.envelope import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    EvidenceRecord,
    pae,
)
from stella_operators.evidence.recorder import record_evidence
from stella_operators.hooks.ledger import LedgerHook
from stella_operators.release.model import ComponentDigest, Release

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "verify_independent.py"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
WEB = "sha256:" + "1" * 64
API = "sha256:" + "2" * 64


def ssl_key(key: SigningKey) -> SSlibKey:
    """The public key as securesystemslib sees it: raw Ed25519 bytes in hex, under our key id."""
    raw = key.public_key.public_bytes_raw()
    return SSlibKey(key.key_id, "ed25519", "ed25519", {"public": raw.hex()})


def envelope_of(record: EvidenceRecord | dict[str, Any]) -> Envelope:
    env = record.envelope if isinstance(record, EvidenceRecord) else record["envelope"]
    return Envelope.from_dict(copy.deepcopy(env))  # from_dict pops keys from what it is given


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A SQLite ledger holding one approval record for a two-image release, signed by `org`."""
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}))
    org = SigningKey.generate()
    ledger = LedgerHook().get_conn()
    release = Release.seal(id="rel-shop-1", app="shop", name="shop-1.0.0", created_at=T0, created_by="ci",
                           components=[ComponentDigest(name="web", repository="reg.local/shop/web", digest=WEB),
                                       ComponentDigest(name="api", repository="reg.local/shop/api", digest=API)])
    ledger.add_release(release)
    record = record_evidence(ledger, org, "approval", release, {"approver": "alice", "decision": "approve"})
    return {"org": org, "record": record, "tmp": tmp_path}


def test_genuine_record_verifies_with_securesystemslib(world: dict[str, Any]) -> None:
    record: EvidenceRecord = world["record"]
    org: SigningKey = world["org"]
    env = envelope_of(record)
    assert env.payload_type == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert env.pae() == pae(PAYLOAD_TYPE, record.payload_bytes())  # same bytes signed on both sides
    accepted = env.verify([ssl_key(org)], 1)
    assert list(accepted) == [org.key_id] == [record.key_id]
    statement = json.loads(env.payload)
    assert statement["_type"] == STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert sorted((s["name"], "sha256:" + s["digest"]["sha256"]) for s in statement["subject"]) == [
        ("reg.local/shop/api", API), ("reg.local/shop/web", WEB)]


def test_one_payload_byte_changed_does_not_verify(world: dict[str, Any]) -> None:
    record: EvidenceRecord = world["record"]
    payload = bytearray(record.payload_bytes())
    at = payload.index(b"alice")
    payload[at] = ord("A")
    forged = copy.deepcopy(record.envelope)
    forged["payload"] = base64.b64encode(bytes(payload)).decode("ascii")
    with pytest.raises(VerificationError):
        envelope_of({"envelope": forged}).verify([ssl_key(world["org"])], 1)


def test_record_resigned_by_another_key_does_not_verify(world: dict[str, Any]) -> None:
    record: EvidenceRecord = world["record"]
    org: SigningKey = world["org"]
    mallory = SigningKey.generate()
    stolen_id = copy.deepcopy(record.envelope)  # mallory's signature claiming the org's key id
    stolen_id["signatures"] = [{"keyid": org.key_id,
                                "sig": base64.b64encode(mallory.sign(pae(PAYLOAD_TYPE, record.payload_bytes())))
                                .decode("ascii")}]
    with pytest.raises(VerificationError):
        envelope_of({"envelope": stolen_id}).verify([ssl_key(org)], 1)
    own_id = copy.deepcopy(stolen_id)  # ... or under its own id, which the trusted key does not have
    own_id["signatures"][0]["keyid"] = mallory.key_id
    with pytest.raises(VerificationError):
        envelope_of({"envelope": own_id}).verify([ssl_key(org)], 1)


def run_script(record_file: Path, public_pem: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(record_file), str(public_pem)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_readme_command_verifies_an_exported_record(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`stella evidence export` then the README's script: ok for the genuine file, INVALID for
    a changed byte or another key, each with exit code 1."""
    record: EvidenceRecord = world["record"]
    tmp: Path = world["tmp"]
    exported, org_pub, other_pub = tmp / "record.json", tmp / "org.pub", tmp / "other.pub"
    assert main(["evidence", "export", record.id, "-o", str(exported)]) == 0
    org_pub.write_bytes(world["org"].public_pem())
    other_pub.write_bytes(SigningKey.generate().public_pem())

    ok = run_script(exported, org_pub)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"ok: {exported} https://stella-operators.dev/evidence/approval/v0 subjects ")
    assert f"reg.local/shop/web@{WEB}" in ok.stdout and f"reg.local/shop/api@{API}" in ok.stdout

    wrong_key = run_script(exported, other_pub)
    assert wrong_key.returncode == 1 and wrong_key.stdout.startswith(f"INVALID: {exported}: VerificationError")

    data = json.loads(exported.read_text())
    payload = base64.b64decode(data["envelope"]["payload"]).replace(b"alice", b"alicf")
    data["envelope"]["payload"] = base64.b64encode(payload).decode("ascii")
    tampered = tmp / "tampered.json"
    tampered.write_text(json.dumps(data))
    bad = run_script(tampered, org_pub)
    assert bad.returncode == 1 and bad.stdout.startswith(f"INVALID: {tampered}: VerificationError"), bad.stdout
