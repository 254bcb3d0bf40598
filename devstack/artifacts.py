"""Push small OCI artifacts (cosign-style signatures, DSSE attestations) to a plain-HTTP registry,
as `cosign sign --key` / `cosign attest --key` lay them out (tag scheme `sha256-<hex>.sig|.att`).

For tests and the demo: the registry is the real one from devstack/registry.py; only the artifact
bytes are made here (the signatures are real, made with real keys by the caller).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx

from stella_operators.evidence.envelope import pae

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
COSIGN_PAYLOAD = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(base: str, repo: str, data: bytes) -> str:
    digest = _digest(data)
    with httpx.Client(timeout=30) as http:
        start = http.post(f"{base}/v2/{repo}/blobs/uploads/")
        start.raise_for_status()
        location = start.headers["Location"]
        url = location if location.startswith("http") else base + location
        # the upload URL carries its own query (_state); the digest is added to it, not put in its place
        url += ("&" if "?" in url else "?") + "digest=" + digest
        put = http.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
        put.raise_for_status()
    return digest


def push_artifact(base: str, repo: str, tag: str, layers: list[tuple[str, bytes, dict[str, str]]]) -> str:
    """An OCI manifest at `tag` whose layers are (media type, bytes, annotations); returns its digest."""
    config = b"{}"
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": push_blob(base, repo, config), "size": len(config)},
                "layers": [{"mediaType": media, "digest": push_blob(base, repo, data), "size": len(data),
                            **({"annotations": notes} if notes else {})} for media, data, notes in layers]}
    body = json.dumps(manifest).encode()
    with httpx.Client(timeout=30) as http:
        http.put(f"{base}/v2/{repo}/manifests/{tag}", content=body,
                 headers={"Content-Type": OCI_MANIFEST}).raise_for_status()
    return _digest(body)


def cosign_payload(repository: str, digest: str) -> bytes:
    return json.dumps({"critical": {"identity": {"docker-reference": repository},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"}, "optional": None}).encode()


def push_signature(base: str, repo: str, digest: str, payload: bytes, signature: bytes) -> str:
    """The `.sig` artifact of `digest` with one signed payload (as `cosign sign --key` writes it)."""
    tag = f"sha256-{digest.split(':', 1)[1]}.sig"
    notes = {"dev.cosignproject.cosign/signature": base64.b64encode(signature).decode("ascii")}
    return push_artifact(base, repo, tag, [(COSIGN_PAYLOAD, payload, notes)])


def statement(digest: str, name: str, predicate_type: str, predicate: dict[str, Any]) -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"name": name, "digest": {"sha256": digest.split(":", 1)[1]}}],
                       "predicateType": predicate_type, "predicate": predicate}).encode()


def push_attestation(base: str, repo: str, digest: str, payload: bytes, sign) -> str:
    """The `.att` artifact of `digest`: one DSSE envelope over `payload`, signed by `sign(pae_bytes)`."""
    payload_type = "application/vnd.in-toto+json"
    envelope = {"payloadType": payload_type, "payload": base64.b64encode(payload).decode("ascii"),
                "signatures": [{"keyid": "", "sig": base64.b64encode(sign(pae(payload_type, payload))).decode()}]}
    tag = f"sha256-{digest.split(':', 1)[1]}.att"
    return push_artifact(base, repo, tag, [(DSSE_ENVELOPE, json.dumps(envelope).encode(), {})])
