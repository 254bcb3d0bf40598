"""Promotion bundles: everything an auditor needs about one promotion, verifiable offline.

A bundle is a tar file:

    MANIFEST.json            what the bundle is about, and the SHA-256 of every other file
    MANIFEST.dsse.json       the manifest's own DSSE signature (the exporter's key): no file was
                             added to or removed from the bundle after it was written
    release.json             the release as stored (id, name, digests, content hash)
    promotion.json           the promotion as stored (who asked, status, decision summary)
    records/NNN-<type>.json  every evidence record of the release and of the promotion, in order
                             (release seal, gate decisions with their inputs, approvals, overrides,
                             deployments, rollbacks), each a signed DSSE envelope
    keys/<key id>.pub        the public keys that signed them (for convenience: verification
                             trusts only the trust store it is given, never these)
    artifacts/...            when exported with the evidence locker: the promotion's version
                             stickers, compose lock files and deploy logs as the locker holds them
                             (read verified against their addresses; covered by the manifest)

`verify_bundle(data, trusted)` needs no ledger and no network: it checks the manifest signature,
that the files are exactly the listed ones with the listed hashes, that every record verifies
against the trust store, and that every record is about this release's digests. Reading a bundle
never touches the file system (no member is extracted).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stella_operators.evidence.canonical import canonical_json, sha256_hex
from stella_operators.evidence.envelope import EvidenceRecord, pae, verify_evidence
from stella_operators.evidence.keys import SigningKey, TrustedKeys, UnknownKeyId

if TYPE_CHECKING:
    from stella_operators.evidence.locker import EvidenceLocker
    from stella_operators.ledger.protocols import FullLedger

BUNDLE_FORMAT = "stella-promotion-bundle/v1"
MANIFEST = "MANIFEST.json"
MANIFEST_SIG = "MANIFEST.dsse.json"
MANIFEST_PAYLOAD_TYPE = "application/vnd.stella.bundle-manifest+json"
MAX_MEMBER_BYTES = 16 * 1024 * 1024
MAX_MEMBERS = 10_000


class BundleError(ValueError):
    """The file is not a bundle we can read (the message says why)."""


@dataclass
class BundleReport:
    promotion_id: str | None = None
    records: list[tuple[str, str]] = field(default_factory=list)  # (file, "ok" | reason)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(r == "ok" for _, r in self.records)

    def lines(self) -> list[str]:
        out = [f"ok: {f}" if r == "ok" else f"INVALID: {f}: {r}" for f, r in self.records]
        out += [f"INVALID: {p}" for p in self.problems]
        return out


def _json_bytes(obj: Any) -> bytes:
    return canonical_json(obj) + b"\n"


def build_bundle(*, promotion: Mapping[str, Any], release: Mapping[str, Any], records: Sequence[EvidenceRecord],
                 public_keys: Mapping[str, str], key: SigningKey, exported_by: str,
                 now: datetime | None = None, artifacts: Mapping[str, bytes] | None = None) -> bytes:
    """The tar bytes of a bundle (deterministic for the same inputs and time). `artifacts`:
    name -> bytes, stored as `artifacts/<name>`."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    files: dict[str, bytes] = {
        "release.json": _json_bytes(dict(release)),
        "promotion.json": _json_bytes(dict(promotion)),
    }
    for name, data in (artifacts or {}).items():
        if name.startswith("/") or ".." in name.split("/"):
            raise BundleError(f"artifact {name!r}: path leaves the bundle")
        files[f"artifacts/{name}"] = data
    for i, rec in enumerate(records, start=1):
        files[f"records/{i:03d}-{rec.type.value}.json"] = rec.to_file_json().encode("utf-8")
    for key_id in sorted({r.key_id for r in records}):
        if key_id in public_keys:
            files[f"keys/{key_id.replace(':', '-')}.pub"] = public_keys[key_id].encode("ascii")
    manifest = {
        "format": BUNDLE_FORMAT, "promotion_id": promotion["id"], "release_id": release["id"],
        "app": release["app"], "environment": promotion["environment"], "exported_at": now.isoformat(),
        "exported_by": exported_by,
        "files": {name: "sha256:" + sha256_hex(data) for name, data in sorted(files.items())},
    }
    manifest_bytes = _json_bytes(manifest)
    sig = key.sign(pae(MANIFEST_PAYLOAD_TYPE, manifest_bytes))


    files[MANIFEST] = manifest_bytes
    files[MANIFEST_SIG] = _json_bytes({"payloadType": MANIFEST_PAYLOAD_TYPE,
                                       "payload": base64.b64encode(manifest_bytes).decode("ascii"),
                                       "signatures": [{"keyid": key.key_id,
                                                       "sig": base64.b64encode(sig).decode("ascii")}]})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in [MANIFEST, MANIFEST_SIG, *sorted(n for n in files if n not in (MANIFEST, MANIFEST_SIG))]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), int(now.timestamp()), 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def read_members(data: bytes) -> dict[str, bytes]:
    """The regular files of a tar, in memory; anything unsafe or oversized is a BundleError."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except tarfile.TarError as exc:
        raise BundleError(f"not a tar file: {exc}") from None
    members: dict[str, bytes] = {}
    with tar:
        for i, m in enumerate(tar):
            if i >= MAX_MEMBERS:
                raise BundleError(f"more than {MAX_MEMBERS} files")
            if not m.isfile():
                raise BundleError(f"{m.name}: not a regular file (links and devices are refused)")
            if m.name.startswith("/") or ".." in m.name.split("/"):
                raise BundleError(f"{m.name}: path leaves the bundle")
            if m.size > MAX_MEMBER_BYTES:
                raise BundleError(f"{m.name}: larger than {MAX_MEMBER_BYTES} bytes")
            if m.name in members:
                raise BundleError(f"{m.name}: appears twice")
            fh = tar.extractfile(m)
            assert fh is not None
            members[m.name] = fh.read()
    return members


def _check_manifest_signature(members: dict[str, bytes], trusted: TrustedKeys) -> str | None:



    try:
        env = json.loads(members[MANIFEST_SIG])
        payload = base64.b64decode(env["payload"], validate=True)
        sig_entry = env["signatures"][0]
        key_id, sig = sig_entry["keyid"], base64.b64decode(sig_entry["sig"], validate=True)
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return f"{MANIFEST_SIG}: not a DSSE envelope"
    if env.get("payloadType") != MANIFEST_PAYLOAD_TYPE or payload != members[MANIFEST]:
        return f"{MANIFEST_SIG}: does not sign this {MANIFEST}"
    try:
        if not trusted.verify(key_id, pae(MANIFEST_PAYLOAD_TYPE, payload), sig):
            return f"{MANIFEST_SIG}: signature does not verify with key {key_id}"
    except UnknownKeyId:
        return f"{MANIFEST_SIG}: signed by untrusted key {key_id}: not in the trust store"
    manifest = json.loads(payload)
    revocation = trusted.revocation(key_id)
    if revocation is not None:
        exported = datetime.fromisoformat(str(manifest.get("exported_at", "")).replace("Z", "+00:00"))
        if revocation.covers(exported):
            return f"{MANIFEST_SIG}: signed by a revoked key: {revocation.sentence()}"
    return None


def verify_bundle(data: bytes, trusted: TrustedKeys) -> BundleReport:
    """Check a bundle with no ledger and no network (see the module docstring)."""
    report = BundleReport()
    members = read_members(data)
    for required in (MANIFEST, MANIFEST_SIG, "release.json", "promotion.json"):
        if required not in members:
            raise BundleError(f"not a promotion bundle: {required} is missing")
    try:
        manifest = json.loads(members[MANIFEST])
    except ValueError:
        raise BundleError(f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{MANIFEST}: format is not {BUNDLE_FORMAT}")
    report.promotion_id = manifest.get("promotion_id")
    problem = _check_manifest_signature(members, trusted)
    if problem:
        report.problems.append(problem)
    listed: dict[str, str] = manifest.get("files") or {}
    present = {n for n in members if n not in (MANIFEST, MANIFEST_SIG)}
    for name in sorted(set(listed) - present):
        report.problems.append(f"{name}: listed in the manifest but missing from the bundle (removed)")
    for name in sorted(present - set(listed)):
        report.problems.append(f"{name}: in the bundle but not in the manifest (added)")
    for name in sorted(present & set(listed)):
        if "sha256:" + sha256_hex(members[name]) != listed[name]:
            report.problems.append(f"{name}: its content does not match the manifest's hash (changed)")
    release = json.loads(members["release.json"])
    digests = {c["digest"] for c in release.get("components", [])}
    for name in sorted(n for n in present if n.startswith("records/")):
        result = verify_evidence(members[name], trusted)
        if not result.ok:
            report.records.append((name, result.reason))
            continue
        statement = result.statement or {}
        subjects = {"sha256:" + s["digest"]["sha256"] for s in statement.get("subject", [])}
        about = statement.get("predicate", {}).get("content", {}).get("release", {})
        if not subjects or not subjects <= digests:
            report.records.append((name, f"is about {sorted(subjects - digests) or 'nothing'}, not the digests of "
                                         f"release {release.get('name')}"))
        elif isinstance(about, dict) and about.get("id") not in (None, release.get("id")):
            report.records.append((name, f"names release {about.get('id')}, the bundle is about {release.get('id')}"))
        else:
            report.records.append((name, "ok"))
    if not any(n.startswith("records/") for n in present):
        report.problems.append("the bundle holds no evidence record")
    return report


def export_bundle(ledger: FullLedger, key: SigningKey, promotion_id: str, *, exported_by: str,
                  now: datetime | None = None, locker: EvidenceLocker | None = None) -> bytes:
    """The bundle of one promotion from the ledger: the release's own records (its seal) and the
    promotion's records, oldest first; with `locker`, also the stickers, lock files and deploy logs
    its index `promotion/<id>` lists (LockerTampered if one changed). Raises the ledger's NotFound
    for an unknown promotion."""
    promotion = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promotion.release_id)
    records = {r.id: r for r in [*ledger.evidence_for(release_id=release.id, release_only=True),
                                 *ledger.evidence_for(promotion_id=promotion.id)]}
    ordered = sorted(records.values(), key=lambda r: (r.created_at, r.id))
    index = locker.index("promotion", promotion.id) if locker is not None else None
    artifacts = {e.name: locker.get(e.address) for e in index.entries
                 if e.kind != "evidence"} if locker is not None and index is not None else {}
    return build_bundle(promotion=promotion.model_dump(mode="json"), release=release.model_dump(mode="json"),
                        records=ordered, public_keys=ledger.public_key_pems({r.key_id for r in ordered}),
                        key=key, exported_by=exported_by, now=now, artifacts=artifacts)
