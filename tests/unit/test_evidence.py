"""Evidence: canonical JSON, keys, DSSE envelopes; any changed byte must fail verification."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta, timezone

import pytest

from stella_operators.evidence import (
    EvidenceRecord,
    EvidenceType,
    SigningKey,
    TrustedKeys,
    UnknownKeyId,
    assert_no_secrets,
    canonical_json,
    load_or_create_dev_key,
    seal_evidence,
    sha256_hex,
    verify_evidence,
)
from stella_operators.evidence.envelope import PAYLOAD_TYPE, pae
from stella_operators.evidence.trust import load_trust_store

WHEN = datetime(2025, 3, 1, 12, 30, 0, 123456, tzinfo=UTC)
WEB = ("registry.local:5000/shop/web", "sha256:" + "a" * 64)
API = ("registry.local:5000/shop/api", "sha256:" + "b" * 64)
CONTENT = {"gate": "security", "verdict": "pass", "reasons": ["NO_CRITICALS"], "counts": {"critical": 0, "high": 2},
           "environment": "prod", "who": "alice", "epss": 0.25}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def trusted(key: SigningKey) -> TrustedKeys:
    keys = TrustedKeys()
    keys.add(key.public_pem())
    return keys


@pytest.fixture(scope="module")
def record(key: SigningKey) -> EvidenceRecord:
    return seal_evidence("gate_decision", [WEB, API], CONTENT, key, WHEN)


def test_canonical_json_is_rfc8785_and_converts_datetimes():
    assert canonical_json({"b": 1, "a": [1.0, "é"], "t": WHEN}) == \
        '{"a":[1,"é"],"b":1,"t":"2025-03-01T12:30:00.123456Z"}'.encode()
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_key_pem_round_trip_and_key_id(key: SigningKey):
    again = SigningKey.from_pem(key.to_pem())
    assert again.key_id == key.key_id and key.key_id.startswith("ed25519:") and len(key.key_id) == 8 + 16
    locked = SigningKey.from_pem(key.to_pem(password=b"pw"), password=b"pw")
    assert locked.key_id == key.key_id
    assert "PRIVATE" not in repr(key)


def test_dev_key_created_0600_and_reused(tmp_path):
    path = tmp_path / "keys" / "dev.pem"
    first = load_or_create_dev_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_dev_key(path).key_id == first.key_id
    assert [p.name for p in path.parent.iterdir()] == ["dev.pem"]  # no temporary file left behind


def test_trusted_keys_from_a_trust_directory(tmp_path, key: SigningKey):
    (tmp_path / "ops.pub").write_bytes(key.public_pem())
    (tmp_path / "ignored.txt").write_text("not a key")
    trusted = load_trust_store([tmp_path], source="test").keys
    assert trusted.key_ids() == [key.key_id]
    assert trusted.verify(key.key_id, b"data", key.sign(b"data"))
    assert not trusted.verify(key.key_id, b"datA", key.sign(b"data"))
    with pytest.raises(UnknownKeyId, match="unknown key id ed25519:"):
        trusted.verify(SigningKey.generate().key_id, b"data", b"sig")
    with pytest.raises(ValueError, match="does not match"):
        trusted.add(key.public_pem(), key_id="ed25519:0000000000000000")


def test_seal_and_verify_round_trip(record: EvidenceRecord, trusted: TrustedKeys, key: SigningKey):
    result = verify_evidence(record, trusted)
    assert result.ok, result.reason
    assert result.key_id == key.key_id
    st = result.statement
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://stella-operators.dev/evidence/gate_decision/v0"
    assert st["subject"] == [{"name": API[0], "digest": {"sha256": "b" * 64}},
                             {"name": WEB[0], "digest": {"sha256": "a" * 64}}]
    assert st["predicate"] == {"type": "gate_decision", "content": CONTENT, "created_at": "2025-03-01T12:30:00.123456Z"}
    payload = base64.b64decode(record.envelope["payload"])
    assert record.id == "sha256:" + sha256_hex(payload)
    assert record.content == CONTENT

    text = record.to_file_json()
    assert EvidenceRecord.from_file_json(text) == record
    assert verify_evidence(text, trusted).ok
    # The bare DSSE envelope verifies too, as any DSSE tool would see it.
    assert verify_evidence(json.dumps(record.envelope, indent=2), trusted).ok


def test_envelope_is_plain_dsse(record: EvidenceRecord, key: SigningKey):
    env = record.envelope
    assert set(env) == {"payloadType", "payload", "signatures"} and env["payloadType"] == PAYLOAD_TYPE
    payload = base64.b64decode(env["payload"])
    signed = b"DSSEv1 %d %s %d %s" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    key.public_key.verify(base64.b64decode(env["signatures"][0]["sig"]), signed)  # raises if invalid


def test_deterministic_same_inputs_same_id(key: SigningKey, record: EvidenceRecord):
    again = seal_evidence("gate_decision", [API, WEB], dict(reversed(CONTENT.items())), key,
                          WHEN.astimezone(timezone(timedelta(hours=2))))
    assert again.id == record.id and again.envelope == record.envelope
    other = seal_evidence("gate_decision", [WEB, API], {**CONTENT, "verdict": "fail"}, key, WHEN)
    assert other.id != record.id


def test_every_changed_byte_of_the_file_fails(key: SigningKey, trusted: TrustedKeys):
    small = seal_evidence("rollback", [WEB], {"to": "shop-1.0.0"}, key, WHEN)
    original = small.to_file_json().encode()
    reasons = set()
    for i in range(len(original)):
        # Every byte gets its low bit flipped; every 4th also has its case/space bit flipped.
        for flip in ((0x01, 0x20) if i % 4 == 0 else (0x01,)):
            tampered = bytearray(original)
            tampered[i] ^= flip
            result = verify_evidence(bytes(tampered), trusted)
            assert not result.ok, f"byte {i} ({chr(original[i])!r}) ^ {flip:#x} still verifies"
            assert result.reason
            reasons.add(result.reason.split(" ")[0])
    assert {"content", "signature", "unknown", "not", "record", "envelope"} <= reasons


def test_specific_reasons(record: EvidenceRecord, trusted: TrustedKeys, key: SigningKey):
    def with_envelope(**changes):
        return record.model_copy(update={"envelope": {**record.envelope, **changes}})

    sig = bytearray(base64.b64decode(record.envelope["signatures"][0]["sig"]))
    sig[10] ^= 1
    bad_sig = with_envelope(signatures=[{"keyid": key.key_id, "sig": base64.b64encode(bytes(sig)).decode()}])
    assert verify_evidence(bad_sig, trusted).reason == f"signature does not verify with key {key.key_id}"

    payload = bytearray(base64.b64decode(record.envelope["payload"]))
    payload[-5] ^= 1
    bad_payload = with_envelope(payload=base64.b64encode(bytes(payload)).decode())
    assert verify_evidence(bad_payload, trusted).reason.startswith("content hash mismatch")
    # Without the record's id (a bare envelope) the signature catches it.
    assert verify_evidence(bad_payload.envelope, trusted).reason.startswith("signature does not verify")

    stranger = SigningKey.generate()
    foreign = seal_evidence("approval", [WEB], {"approver": "bob"}, stranger, WHEN)
    assert verify_evidence(foreign, trusted).reason == f"unknown key id {stranger.key_id}"


def test_non_canonical_payload_is_refused_even_when_signed(record: EvidenceRecord, trusted: TrustedKeys,
                                                          key: SigningKey):
    pretty = json.dumps(record.statement(), indent=1).encode()  # same JSON, other bytes
    sig = base64.b64encode(key.sign(pae(PAYLOAD_TYPE, pretty))).decode()
    env = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(pretty).decode(),
           "signatures": [{"keyid": key.key_id, "sig": sig}]}
    assert verify_evidence(env, trusted).reason == "payload is not canonical JSON"
    rec = record.model_copy(update={"envelope": env, "id": "sha256:" + sha256_hex(pretty)})
    assert verify_evidence(rec, trusted).reason == "payload is not canonical JSON"


def test_record_fields_must_match_the_statement(record: EvidenceRecord, trusted: TrustedKeys):
    retyped = record.model_copy(update={"type": EvidenceType.APPROVAL})
    assert verify_evidence(retyped, trusted).reason == "record field 'type' does not match the signed statement"
    later = record.model_copy(update={"created_at": WHEN + timedelta(seconds=1)})
    assert "created_at" in verify_evidence(later, trusted).reason


def test_secrets_are_refused():
    with pytest.raises(ValueError, match=r"'content\.targets\[1\]\.db_password'"):
        assert_no_secrets({"targets": [{"name": "a"}, {"name": "b", "db_password": "x"}]})
    for name in ("apiToken", "client-secret", "private_key", "AWS_SECRET_ACCESS_KEY", "Token"):
        with pytest.raises(ValueError, match="secrets"):
            assert_no_secrets({"outer": {name: "x"}})
    with pytest.raises(ValueError, match="private key"):
        assert_no_secrets({"note": "-----BEGIN PRIVATE KEY-----\nabc"})
    assert_no_secrets({"connection_id": "prod_ssh", "digest": "sha256:" + "a" * 64})


def test_seal_refuses_secrets_and_bad_input(key: SigningKey):
    with pytest.raises(ValueError, match="password"):
        seal_evidence("deployment", [WEB], {"password": "hunter2"}, key, WHEN)
    with pytest.raises(ValueError, match="timezone"):
        seal_evidence("deployment", [WEB], {}, key, WHEN.replace(tzinfo=None))
    with pytest.raises(ValueError):
        seal_evidence("deployment", [(WEB[0], "latest")], {}, key, WHEN)
    with pytest.raises(ValueError):
        seal_evidence("not_a_type", [WEB], {}, key, WHEN)
