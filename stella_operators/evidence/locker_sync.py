"""What goes into the evidence locker, copied from the ledger (the source of truth, and the queue).

The ledger records first, in its own transactions, as it always did; the locker gets a copy after:
- `archive_promotion`: every evidence record of the promotion and of its release (the seal), each
  deployment's version sticker and deploy log per target (from the ledger's target results) and
  the files targets wrote on hosts (compose lock files, passed in by the deploy task), listed in
  index `promotion/<id>`; the release's own records also in index `release/<release id>`.
- `write_checkpoint`: a signed audit checkpoint, index `checkpoint/<UTC time>`; `latest_checkpoint`
  reads the newest back for `stella audit verify`.
- `catch_up`: archive the latest promotions again. Archiving is idempotent (content addressed, an
  unchanged index is not rewritten), so this is the retry of any copy that failed: a locker that
  cannot be written never loses a record, the ledger still holds it and the next catch-up copies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stella_operators.evidence.canonical import canonical_json
from stella_operators.evidence.locker import EvidenceLocker, LockerError, LockerIndex
from stella_operators.ledger.audit import GENESIS_HASH
from stella_operators.ledger.audit_checkpoint import make_checkpoint

if TYPE_CHECKING:
    from stella_operators.evidence.envelope import EvidenceRecord
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import FullLedger

# target -> {file name on the host: its text}, e.g. {"web-1": {"compose.stella.lock.yml": "..."}}
HostFiles = Mapping[str, Mapping[str, str]]


def _record_file(record: EvidenceRecord) -> tuple[str, str, bytes, dict[str, Any]]:
    return (f"evidence/{record.type}-{record.id.split(':', 1)[-1][:16]}.json", "evidence",
            record.to_file_json().encode("utf-8"), {"id": record.id, "type": str(record.type)})


def host_files_of(outcome: Any) -> dict[str, HostFiles]:
    """deployment id -> HostFiles from a DeploymentOutcome (deploy/engine.py), empty when none."""
    if outcome is None or not getattr(outcome, "deployment_id", None):
        return {}
    files = {t.target: dict(t.host_files) for t in outcome.targets if getattr(t, "host_files", None)}
    return {outcome.deployment_id: files} if files else {}


def archive_release(ledger: FullLedger, locker: EvidenceLocker, release_id: str, *,
                    now: datetime | None = None) -> LockerIndex:
    """Index `release/<id>`: the release's own records (its seal)."""
    records = ledger.evidence_for(release_id=release_id, release_only=True)
    return locker.add("release", release_id, [_record_file(r) for r in records], now=now)


def archive_promotion(ledger: FullLedger, locker: EvidenceLocker, promotion_id: str, *,
                      host_files: Mapping[str, HostFiles] | None = None,
                      now: datetime | None = None) -> LockerIndex:
    """Index `promotion/<id>` with everything the ledger holds about the promotion (see the module
    docstring). `host_files`: deployment id -> HostFiles the deploy task got back from the targets."""
    promo = ledger.get_promotion(promotion_id)
    archive_release(ledger, locker, promo.release_id, now=now)
    records = ledger.evidence_for(release_id=promo.release_id, release_only=True)
    records += ledger.evidence_for(promotion_id=promotion_id)
    files = [_record_file(r) for r in records]
    for dep in ledger.deployments_for(promotion_id):
        for t in dep.targets:
            meta = {"deployment_id": dep.id, "target": t.target, "status": t.status}
            if t.sticker is not None:
                files.append((f"stickers/{dep.id}/{t.target}.version.json", "sticker",
                              canonical_json(t.sticker.model_dump(mode="json")), meta))
            if t.log:
                files.append((f"deploy_logs/{dep.id}/{t.target}.log", "deploy_log", t.log.encode("utf-8"), meta))
    for deployment_id, by_target in (host_files or {}).items():
        for target, named in by_target.items():
            for name, text in named.items():
                files.append((f"lock_files/{deployment_id}/{target}/{name}", "lock_file", text.encode("utf-8"),
                              {"deployment_id": deployment_id, "target": target}))
    return locker.add("promotion", promotion_id, files, now=now)


def catch_up(ledger: FullLedger, locker: EvidenceLocker, *, limit: int = 200) -> list[str]:
    """Archive the `limit` latest promotions again (idempotent); the ids whose index changed."""
    changed = []
    for promo in ledger.recent_promotions(limit=limit):
        before = locker.index("promotion", promo.id)
        after = archive_promotion(ledger, locker, promo.id)
        if before is None or before.updated_at != after.updated_at:
            changed.append(promo.id)
    return changed


def checkpoint_subject(at: datetime) -> str:
    """A sortable, file-name-safe UTC time: the newest checkpoint is the greatest subject."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def write_checkpoint(locker: EvidenceLocker, text: str, at: datetime, *, events: int) -> LockerIndex:
    return locker.add("checkpoint", checkpoint_subject(at),
                      [("audit-checkpoint.dsse.json", "checkpoint", text.encode("utf-8"), {"events": events})], now=at)


def latest_checkpoint(locker: EvidenceLocker) -> tuple[str, bytes] | None:
    """(index subject, verified bytes) of the newest checkpoint in the locker, None when it has none.
    A checkpoint whose bytes changed raises LockerTampered (never silently skipped)."""
    indexes = locker.indexes("checkpoint")
    if not indexes:
        return None
    newest = indexes[-1]
    entry = next((e for e in newest.entries if e.kind == "checkpoint"), None)
    if entry is None:
        raise LockerError(f"index checkpoint/{newest.subject} lists no checkpoint file")
    return newest.subject, locker.get(entry.address)


def checkpoint_to_locker(ledger: FullLedger, key: SigningKey, locker: EvidenceLocker, *,
                         now: datetime | None = None) -> tuple[LockerIndex, int, str]:
    """Sign a checkpoint of the audit chain, write it to the locker, then note it in the chain too
    (`audit.checkpoint`, with its locker address). The locker copy is the one that counts: someone
    who cuts events off the end of the chain in the database cuts that note with them, not the file.
    Returns (index, events, head)."""
    at = now or datetime.now(UTC)
    rows = ledger.audit_events()
    text = make_checkpoint(rows, key, at)
    index = write_checkpoint(locker, text, at, events=len(rows))
    head = rows[-1].hash if rows else GENESIS_HASH
    ledger.audit("stella", "audit.checkpoint", "audit",
                 {"events": len(rows), "head": head, "locker": locker.where,
                  "address": index.entries[0].address, "key_id": key.key_id})
    return index, len(rows), head
