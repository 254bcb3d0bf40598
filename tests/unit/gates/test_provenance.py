"""Provenance gate: the OCI referrers path (registries with the referrers API) and config errors.
The real-registry tag path is in tests/integration/test_provenance_gate.py."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stella_operators.gates.contract import GateConfigError, PromotionContext
from stella_operators.gates.provenance.gate import ProvenanceGate
from stella_operators.gates.provenance.verify import COSIGN_PAYLOAD, COSIGN_SIGNATURE
from stella_operators.release.model import ComponentDigest, Release

DIGEST = "sha256:" + "ab" * 32


class ReferrersRegistry:
    """In memory, shaped like a registry with the OCI 1.1 referrers API (none runs here)."""

    def __init__(self, key):
        payload = json.dumps({"critical": {"image": {"docker-manifest-digest": DIGEST}}}).encode()
        self.blobs = {"sha256:" + hashlib.sha256(payload).hexdigest(): payload}
        sig = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        manifest = json.dumps({"layers": [{"mediaType": COSIGN_PAYLOAD, "digest": next(iter(self.blobs)),
                                           "annotations": {COSIGN_SIGNATURE: sig}}]}).encode()
        self.manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        self.manifests = {self.manifest_digest: manifest}
        self.asked: list[str] = []

    def referrers(self, repo, digest):
        self.asked.append("referrers")
        return [{"digest": self.manifest_digest, "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"}]

    def fetch_manifest(self, repo, ref):
        self.asked.append(f"manifest {ref}")
        return (self.manifests[ref], "application/vnd.oci.image.manifest.v1+json") if ref in self.manifests else None

    def fetch_blob(self, repo, digest):
        return self.blobs[digest]


def test_signatures_found_through_the_referrers_api_are_verified(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "ci.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    registry = ReferrersRegistry(key)
    gate = ProvenanceGate("provenance", ProvenanceGate.Config(keys=(str(tmp_path),)))
    release = Release.seal(id="r", app="a", name="a-1", created_at=datetime.now(UTC), created_by="ci",
                           components=[ComponentDigest(name="web", repository="reg.local/a/web", digest=DIGEST)])
    ctx = PromotionContext(app="a", environment="prod", release=release, promotion_id="p", requested_by="x",
                           now=datetime.now(UTC), registry=lambda repo: (registry, repo.split("/", 1)[1]))
    inputs = gate.collect(ctx)
    assert inputs["components"][0]["source"] == "referrers"
    assert not any(a.endswith((".sig", ".att")) for a in registry.asked)  # no tag fallback when referrers work
    assert gate.decide(inputs).verdict == "pass"


def test_without_registry_access_or_with_relative_key_paths_it_refuses():
    with pytest.raises(GateConfigError, match=r"keys\[0\].*absolute path"):
        ProvenanceGate("provenance", ProvenanceGate.Config(keys=("keys/ci.pub",)))
    with pytest.raises(ValueError):
        ProvenanceGate.Config(keys=())
