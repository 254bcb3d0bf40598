"""The provenance gate: before a digest may enter an environment, a signature or attestation over
that exact digest, made by a key the estate trusts, must sit in the registry next to the image.

    gates:
      - type: provenance
        keys: [/etc/stella/provenance/ci.pub]   # PEM public keys (files or folders of *.pub / *.pem)
        require: signature                       # signature | attestation | both | either
        predicate_types: [https://slsa.dev/provenance/v1]   # attestations must be of one of these

`collect` finds, per component digest, the artifacts that refer to it: through the registry's
OCI referrers API, else (Distribution 2.x, most registries today) cosign's tag scheme
`sha256-<hex>.sig` / `sha256-<hex>.att`; it records each signature payload and signature, each
DSSE envelope, and the trusted keys' PEM, so `decide` (pure) verifies them and replays exactly.
Reasons: `provenance.missing` (nothing refers to the digest), `provenance.untrusted_signature`
(no trusted key made it), `provenance.wrong_digest` (signed, but about another digest),
`provenance.wrong_predicate`, `provenance.malformed`, `provenance.unreadable` (the registry
could not be read: fail closed).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from stella_operators.evidence.trust import key_files, pem_blocks
from stella_operators.gates.contract import Decision, GateConfigError, PromotionContext, Verdict
from stella_operators.gates.provenance.verify import (
    COSIGN_PAYLOAD,
    COSIGN_SIGNATURE,
    DSSE_ENVELOPE,
    check_attestation,
    check_signature,
    load_key,
)

MAX_ARTIFACTS = 20  # per digest: a registry that lists more is not telling us anything we trust


class ProvenanceGate:
    """Gate type "provenance" (see the module docstring)."""

    type: ClassVar[str] = "provenance"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        keys: tuple[str, ...] = Field(min_length=1, description="PEM public key files or folders")
        require: Literal["signature", "attestation", "both", "either"] = "signature"
        predicate_types: tuple[str, ...] = ()

    def __init__(self, name: str, config: Config):
        self.name = name
        self.config = config
        for i, path in enumerate(config.keys):
            if not Path(path).is_absolute():
                raise GateConfigError(f"keys[{i}]", f"{path!r}: use an absolute path (the gate runs in workers)")

    # -- collect (I/O) ----------------------------------------------------------------------

    def collect(self, ctx: PromotionContext) -> dict[str, Any]:
        pems: dict[str, str] = {}
        for path in self.config.keys:
            for f in key_files(path):
                for block in pem_blocks(f.read_text("ascii"), str(f)):
                    kid, _ = load_key(block)
                    pems[kid] = block
        if ctx.registry is None:
            raise RuntimeError("no registry access was given to the gate")
        components = []
        for c in ctx.release.components:
            entry: dict[str, Any] = {"name": c.name, "repository": c.repository, "digest": c.digest}
            try:
                client, repo = ctx.registry(c.repository)
                entry.update(_artifacts(client, repo, c.digest))
            except Exception as exc:  # noqa: BLE001 - recorded, and the decision fails closed on it
                entry.update({"source": "error", "error": f"{type(exc).__name__}: {exc}"})
            components.append(entry)
        return {"keys": pems, "require": self.config.require, "predicate_types": list(self.config.predicate_types),
                "components": components}

    # -- decide (pure) ----------------------------------------------------------------------

    def decide(self, inputs: dict[str, Any]) -> Decision:
        keys = dict(load_key(pem) for pem in inputs["keys"].values())
        require, wanted = inputs["require"], list(inputs["predicate_types"])
        reasons: list[str] = []
        problems: list[str] = []
        details: dict[str, Any] = {}
        for comp in inputs["components"]:
            name, digest = comp["name"], comp["digest"]
            if comp.get("source") == "error":
                reasons.append("provenance.unreadable")
                problems.append(f"{name}: could not read the registry: {comp['error']}")
                continue
            sig = [check_signature(keys, s, digest) for s in comp.get("signatures", [])]
            att = [check_attestation(keys, a, digest, wanted) for a in comp.get("attestations", [])]
            sig_ok, att_ok = any(ok for ok, _ in sig), any(ok for ok, _ in att)
            satisfied = {"signature": sig_ok, "attestation": att_ok, "both": sig_ok and att_ok,
                         "either": sig_ok or att_ok}[require]
            details[name] = {"digest": digest, "source": comp.get("source"),
                             "signed_by": sorted({k for ok, k in sig if ok}),
                             "attested_by": sorted({k for ok, k in att if ok})}
            if satisfied:
                continue
            # why each required kind is missing: nothing of that kind, or each one's failure
            unmet = {"signature": [sig], "attestation": [att], "both": [x for x, ok in ((sig, sig_ok), (att, att_ok))
                                                                          if not ok], "either": [sig, att]}[require]
            failures = sorted({why for results in unmet for ok, why in results if not ok}
                              | ({"provenance.missing"} if any(not results for results in unmet) else set()))
            reasons += failures
            what = {"signature": "signature", "attestation": "attestation", "both": "signature and attestation",
                    "either": "signature or attestation"}[require]
            problems.append(f"{name} ({digest}): no {what} by a trusted key "
                            f"({', '.join(f.removeprefix('provenance.') for f in failures)})")
        if not problems:
            return Decision(verdict=Verdict.PASS, message="every digest is signed by a trusted key", details=details)
        return Decision(verdict=Verdict.FAIL, reasons=tuple(sorted(set(reasons))), message="; ".join(problems),
                        remedy="sign the exact digest with a trusted key (cosign sign --key ...), push the "
                               "signature to the registry, and promote again", details=details)


def _artifacts(client: Any, repo: str, digest: str) -> dict[str, Any]:
    """The signatures and attestations that refer to `digest`: referrers API, else cosign's tags."""
    manifests: list[tuple[str, bytes]] = []
    referrers = client.referrers(repo, digest)
    if referrers is not None:
        source = "referrers"
        for desc in referrers[:MAX_ARTIFACTS]:
            found = client.fetch_manifest(repo, desc["digest"])
            if found is not None:
                manifests.append((desc["digest"], found[0]))
    else:
        source = "tags"
        hexpart = digest.split(":", 1)[1]
        for suffix in ("sig", "att"):
            found = client.fetch_manifest(repo, f"sha256-{hexpart}.{suffix}")
            if found is not None:
                manifests.append((f"sha256-{hexpart}.{suffix}", found[0]))
    signatures, attestations = [], []
    for ref, body in manifests:
        manifest = json.loads(body)
        for layer in (manifest.get("layers") or [])[:MAX_ARTIFACTS]:
            media = layer.get("mediaType")
            if media == COSIGN_PAYLOAD and COSIGN_SIGNATURE in (layer.get("annotations") or {}):
                blob = client.fetch_blob(repo, layer["digest"])
                signatures.append({"manifest": ref, "payload": base64.b64encode(blob).decode("ascii"),
                                   "signature": layer["annotations"][COSIGN_SIGNATURE]})
            elif media == DSSE_ENVELOPE:
                attestations.append({"manifest": ref, **json.loads(client.fetch_blob(repo, layer["digest"]))})
    return {"source": source, "signatures": signatures, "attestations": attestations}
