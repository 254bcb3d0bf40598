"""Evidence trust: `stella evidence verify` trusts only a configured trust store, never the ledger's keys.

The forgery from issue 6 item 8: a key of one's own in AIRFLOW_CONN_STELLA_SIGNING_KEY signs a
forged approval, which registers that key in the ledger (every signing path does); the forged
record must still not verify.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stella_operators.cli.main import main
from stella_operators.evidence import SigningKey
from stella_operators.evidence.recorder import record_evidence
from stella_operators.evidence.trust import TrustStoreError, load_trust_store
from stella_operators.hooks.ledger import LedgerHook
from stella_operators.hooks.signing import SigningKeyHook
from stella_operators.hooks.trust import TrustStoreHook
from stella_operators.release.model import ComponentDigest, Release

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def key_conn(key: SigningKey) -> str:
    return json.dumps({"conn_type": "generic", "password": key.to_pem().decode()})


@pytest.fixture()
def world(tmp_path, monkeypatch):
    """A ledger with one genuine release and approval, signed by the organisation's key, whose
    public key is the trust store's only key."""
    for var in ("STELLA_TRUST_DIR", "AIRFLOW_CONN_STELLA_TRUST", "STELLA_TRUST_CONN_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}))
    org = SigningKey.generate()
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "org.pub").write_bytes(org.public_pem())
    ledger = LedgerHook().get_conn()
    release = Release.seal(id="rel-shop-1", app="shop", name="shop-1.0.0", created_at=T0, created_by="ci",
                           components=[ComponentDigest(name="web", repository="reg.local/shop/web",
                                                       digest="sha256:" + "1" * 64)])
    ledger.add_release(release)
    genuine = record_evidence(ledger, org, "approval", release, {"approver": "alice", "decision": "approve"})
    return {"ledger": ledger, "release": release, "org": org, "trust": trust, "genuine": genuine,
            "tmp": tmp_path}


def forge_with_own_key(world, monkeypatch) -> str:
    """The attack: one's own key as the signing key Connection; signing registers it in the ledger."""
    mallory = SigningKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY", key_conn(mallory))
    key = SigningKeyHook().get_conn()
    forged = record_evidence(world["ledger"], key, "approval", world["release"],
                             {"approver": "bob", "decision": "approve"})
    monkeypatch.delenv("AIRFLOW_CONN_STELLA_SIGNING_KEY")
    assert mallory.key_id in world["ledger"].registered_keys()  # the ledger took it: that is not trust
    return forged.id


def test_forged_record_signed_by_a_self_registered_key_does_not_verify(world, monkeypatch, capsys):
    forged = forge_with_own_key(world, monkeypatch)
    monkeypatch.setenv("STELLA_TRUST_DIR", str(world["trust"]))
    assert main(["evidence", "verify", forged]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"INVALID: {forged}: untrusted key ed25519:")
    assert f"not in the trust store (STELLA_TRUST_DIR={world['trust']})" in out
    # exported to a file, it fails the same way
    exported = world["tmp"] / "forged.json"
    assert main(["evidence", "export", forged, "-o", str(exported)]) == 0
    capsys.readouterr()
    assert main(["evidence", "verify", str(exported)]) == 1
    assert "untrusted key" in capsys.readouterr().out


def test_genuine_record_verifies_against_the_trust_store(world, monkeypatch, capsys):
    monkeypatch.setenv("STELLA_TRUST_DIR", str(world["trust"]))
    assert main(["evidence", "verify", world["genuine"].id]) == 0
    out = capsys.readouterr().out
    assert out == (f"ok: {world['genuine'].id} (key {world['org'].key_id}, "
                   f"trusted by STELLA_TRUST_DIR={world['trust']})\n")


def test_no_trust_store_fails_and_says_how_to_configure_one(world, monkeypatch, capsys):
    assert main(["evidence", "verify", world["genuine"].id]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    assert err.startswith("stella: cannot verify: no trust store configured")
    assert "never against keys found in the ledger" in err
    for how in ("STELLA_TRUST_DIR", "'stella_trust'", '"path"', '"public_keys"', "--trust PATH"):
        assert how in err, how


def test_trust_from_an_airflow_connection(world, monkeypatch, capsys):
    forged = forge_with_own_key(world, monkeypatch)
    pem = world["org"].public_pem().decode()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_TRUST", json.dumps({"conn_type": "generic",
                                                                "extra": {"public_keys": [pem]}}))
    assert main(["evidence", "verify", world["genuine"].id]) == 0
    assert main(["evidence", "verify", forged]) == 1
    assert "not in the trust store (connection 'stella_trust')" in capsys.readouterr().out
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_TRUST", json.dumps({"conn_type": "generic",
                                                                "extra": {"path": str(world["trust"])}}))
    assert TrustStoreHook().get_conn().keys.key_ids() == [world["org"].key_id]


def test_explicit_trust_path_wins_and_ledger_keys_only_with_a_warning(world, monkeypatch, capsys):
    forged = forge_with_own_key(world, monkeypatch)
    assert main(["evidence", "verify", "--trust", str(world["trust"] / "org.pub"), world["genuine"].id, forged]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: ") and out[1].startswith(f"INVALID: {forged}: untrusted key")
    assert main(["evidence", "verify", "--trust-ledger-keys", forged]) == 0
    captured = capsys.readouterr()
    assert "WARNING: --trust-ledger-keys" in captured.err and "forged record" in captured.err
    assert "trusted by the ledger's registered keys (untrusted)" in captured.out


def test_public_key_and_keygen_make_a_trust_store(tmp_path, monkeypatch, capsys):
    key_path, pub_path = tmp_path / "keys" / "signing.pem", tmp_path / "trust" / "signing.pub"
    assert main(["evidence", "keygen", str(key_path), "--public", str(pub_path)]) == 0
    assert main(["evidence", "keygen", str(key_path), "--public", str(pub_path)]) == 2  # never overwritten
    key = SigningKey.from_pem(key_path.read_bytes())
    assert load_trust_store([tmp_path / "trust"], source="t").keys.key_ids() == [key.key_id]
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY",
                       json.dumps({"conn_type": "generic", "extra": {"key_file": str(key_path)}}))
    capsys.readouterr()
    assert main(["evidence", "public-key"]) == 0
    assert capsys.readouterr().out.encode() == key.public_pem()


def test_trust_store_contents_are_checked(tmp_path):
    key, other = SigningKey.generate(), SigningKey.generate()
    (tmp_path / "both.pem").write_bytes(key.public_pem() + b"\n" + other.public_pem())
    (tmp_path / "notes.txt").write_text("ignored: not a key file name")
    assert load_trust_store([tmp_path], source="t").keys.key_ids() == sorted([key.key_id, other.key_id])
    with pytest.raises(TrustStoreError, match="notes.txt: no PEM public key"):
        load_trust_store([tmp_path / "notes.txt"], source="t")
    (tmp_path / "leak.pem").write_bytes(key.to_pem())
    with pytest.raises(TrustStoreError, match="leak.pem: holds a private key"):
        load_trust_store([tmp_path], source="t")
    with pytest.raises(TrustStoreError, match="does not exist"):
        load_trust_store([tmp_path / "nope"], source="t")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrustStoreError, match="holds no public key"):
        load_trust_store([empty], source="t")


def test_signing_with_a_key_outside_the_trust_store_warns(world, monkeypatch, caplog):
    mallory = SigningKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY", key_conn(mallory))
    monkeypatch.setenv("STELLA_TRUST_DIR", str(world["trust"]))
    with caplog.at_level("WARNING"):
        SigningKeyHook().get_conn()
    assert f"evidence signed with {mallory.key_id} will not verify" in caplog.text
    caplog.clear()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY", key_conn(world["org"]))
    with caplog.at_level("WARNING"):
        assert SigningKeyHook().get_conn().key_id == world["org"].key_id
    assert caplog.text == ""
