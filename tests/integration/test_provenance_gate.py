"""The provenance gate against a real registry (Distribution 2.8, no referrers API: cosign's tag
scheme), with signatures and attestations made by real keys and pushed by the test as cosign lays
them out. Each refusal names its reason; a recorded decision replays to the same verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from devstack.artifacts import cosign_payload, push_attestation, push_signature, statement
from stella_operators.gates.contract import PromotionContext, replay_gate
from stella_operators.gates.provenance.gate import ProvenanceGate
from stella_operators.registry.client import RegistryClient
from stella_operators.release.model import ComponentDigest, Release

SLSA = "https://slsa.dev/provenance/v1"


def _pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture()
def world(registry, image_factory, tmp_path):
    ci = ec.generate_private_key(ec.SECP256R1())          # cosign's default key type
    builder = ed25519.Ed25519PrivateKey.generate()        # the build system's attestation key
    stranger = ec.generate_private_key(ec.SECP256R1())
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "ci.pub").write_text(_pem(ci))
    (keys / "builder.pub").write_text(_pem(builder))
    client = RegistryClient(registry.host_port, scheme="http")
    yield {"registry": registry, "factory": image_factory, "ci": ci, "builder": builder, "stranger": stranger,
           "keys": str(keys), "base": f"http://{registry.host_port}", "client": client}
    client.close()


def _image(world, name: str) -> tuple[str, str]:
    digest = world["factory"](f"prov/{name}", "1.0.0", files={"/www/v": name})
    return f"{world['registry'].host_port}/prov/{name}", digest


def _sign(world, name: str, digest: str, key, signed_digest: str | None = None) -> None:
    payload = cosign_payload(f"{world['registry'].host_port}/prov/{name}", signed_digest or digest)
    push_signature(world["base"], f"prov/{name}", digest, payload, key.sign(payload, ec.ECDSA(hashes.SHA256())))


def _evaluate(world, repository: str, digest: str, **config):
    gate = ProvenanceGate("provenance", ProvenanceGate.Config(keys=(world["keys"],), **config))
    release = Release.seal(id="rel-1", app="prov", name="prov-1", created_at=datetime.now(UTC), created_by="ci",
                           components=[ComponentDigest(name="web", repository=repository, digest=digest)])
    ctx = PromotionContext(app="prov", environment="prod", release=release, promotion_id="prm-1",
                           requested_by="alice", now=datetime.now(UTC),
                           registry=lambda repo: (world["client"], repo.split("/", 1)[1]))
    inputs = gate.collect(ctx)
    decision = gate.decide(inputs)
    replayed = replay_gate(gate, inputs, at=ctx.now)  # from the record alone: same verdict, same reasons
    assert (replayed.verdict, replayed.reasons) == (decision.verdict, tuple(sorted(set(decision.reasons))))
    return decision, inputs


def test_a_digest_signed_by_a_trusted_key_passes(world):
    repo, digest = _image(world, "good")
    _sign(world, "good", digest, world["ci"])
    decision, inputs = _evaluate(world, repo, digest)
    assert decision.verdict == "pass", decision.message
    assert inputs["components"][0]["source"] == "tags"  # Distribution 2.8 has no referrers API
    assert decision.details["web"]["signed_by"] == [next(iter(k for k, v in inputs["keys"].items()
                                                              if v.strip() == _pem(world["ci"]).strip()))]


def test_no_signature_fails_missing(world):
    repo, digest = _image(world, "unsigned")
    decision, _ = _evaluate(world, repo, digest)
    assert decision.verdict == "fail" and decision.reasons == ("provenance.missing",)
    assert decision.message == f"web ({digest}): no signature by a trusted key (missing)"


def test_a_signature_by_an_untrusted_key_fails(world):
    repo, digest = _image(world, "stranger")
    _sign(world, "stranger", digest, world["stranger"])
    decision, _ = _evaluate(world, repo, digest)
    assert decision.verdict == "fail" and decision.reasons == ("provenance.untrusted_signature",)


def test_a_trusted_signature_about_another_digest_fails(world):
    repo, digest = _image(world, "swapped")
    _, other = _image(world, "other")
    _sign(world, "swapped", digest, world["ci"], signed_digest=other)  # a real signature, of another image
    decision, _ = _evaluate(world, repo, digest)
    assert decision.verdict == "fail" and decision.reasons == ("provenance.wrong_digest",)


def test_attestations_are_checked_for_key_subject_and_predicate_type(world):
    repo, digest = _image(world, "attested")
    push_attestation(world["base"], "prov/attested", digest, statement(digest, repo, SLSA, {"builder": "ci"}),
                     world["builder"].sign)
    decision, _ = _evaluate(world, repo, digest, require="attestation", predicate_types=(SLSA,))
    assert decision.verdict == "pass", decision.message
    decision, _ = _evaluate(world, repo, digest, require="attestation",
                            predicate_types=("https://example.com/other/v1",))
    assert decision.reasons == ("provenance.wrong_predicate",)
    decision, _ = _evaluate(world, repo, digest, require="both")  # attested, but not signed
    assert decision.verdict == "fail" and decision.reasons == ("provenance.missing",)
