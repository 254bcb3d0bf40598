"""What the ledger hands back besides releases and promotions: deployments and their per-target results,
approvals and gate verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from stella_operators.evidence.envelope import EvidenceRecord
from stella_operators.gates.contract import GateVerdict
from stella_operators.ledger.errors import LedgerError
from stella_operators.promotion.model import Promotion
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.targets.contract import VersionSticker


class DeploymentStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class TargetResult:
    deployment_id: str
    target: str
    status: str
    digests: dict[str, str]
    timings: dict[str, int]
    log: str
    sticker: VersionSticker | None
    recorded_at: datetime


@dataclass(frozen=True)
class Deployment:
    id: str
    promotion_id: str
    strategy: str
    status: DeploymentStatus
    started_at: datetime
    finished_at: datetime | None
    previous: dict[str, dict[str, str]]  # target -> component -> digest, what ran before (for rollback)
    error: str | None
    targets: tuple[TargetResult, ...] = field(default=())


APPROVAL_DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class Approval:
    """One approval attempt as recorded: counted, or refused with a stable reason code in `refusal`."""

    seq: int
    promotion_id: str
    approver: str
    decision: str            # "approve" | "reject"
    comment: str
    content_hash: str        # the release content hash the approver was shown (the approval binds to it)
    counted: bool
    refusal: str | None      # e.g. "approval.requester_cannot_approve"; None when counted
    at: datetime
    evidence_id: str | None = None
    plan_hash: str | None = None  # the deployment plan shown when it was given (None before 0004)


def release_from_row(row: sa.Row[Any]) -> Release:
    release = Release(id=row.id, app=row.app, name=row.name, state=row.state, content_hash=row.content_hash,
                      components=[ComponentDigest(**c) for c in row.components], created_at=row.created_at,
                      created_by=row.created_by, source=row.source or {})
    try:
        release.check_integrity()
    except ValueError as exc:
        raise LedgerError(f"ledger row failed its integrity check: {exc}") from None
    return release


def release_values(release: Release) -> dict[str, Any]:
    return {"id": release.id, "app": release.app, "name": release.name, "state": release.state.value,
            "content_hash": release.content_hash, "source": dict(release.source),
            "components": [c.model_dump(mode="json") for c in release.components],
            "created_at": release.created_at, "created_by": release.created_by}


def promotion_from_row(row: sa.Row[Any]) -> Promotion:
    return Promotion(id=row.id, app=row.app, environment=row.environment, release_id=row.release_id,
                     status=row.status, requested_by=row.requested_by, requested_at=row.requested_at,
                     reason=row.reason, dag_id=row.airflow_dag_id, run_id=row.airflow_run_id,
                     decision=row.decision, updated_at=row.updated_at)


def target_result_from_row(row: sa.Row[Any]) -> TargetResult:
    sticker = VersionSticker.model_validate(row.sticker) if row.sticker is not None else None
    return TargetResult(row.deployment_id, row.target, row.status, row.digests, row.timings, row.log, sticker,
                        row.recorded_at)


def deployment_from_row(row: sa.Row[Any], targets: list[TargetResult]) -> Deployment:
    return Deployment(row.id, row.promotion_id, row.strategy, DeploymentStatus(row.status), row.started_at,
                      row.finished_at, row.previous, row.error, tuple(targets))


def evidence_from_row(row: sa.Row[Any]) -> EvidenceRecord:
    return EvidenceRecord(id=row.id, type=row.type, subjects=row.subjects, envelope=row.envelope,
                          key_id=row.key_id, created_at=row.created_at)


def approval_from_row(row: sa.Row[Any]) -> Approval:
    return Approval(row.seq, row.promotion_id, row.approver, row.decision, row.comment, row.content_hash,
                    bool(row.counted), row.refusal, row.at, row.evidence_id,
                    row.plan_hash)


def gate_verdict_from_row(row: sa.Row[Any]) -> tuple[GateVerdict, dict[str, Any]]:
    verdict = GateVerdict(gate_type=row.gate_type, gate_name=row.gate_name, verdict=row.verdict,
                          reasons=tuple(row.reasons), message=row.message, remedy=row.remedy, details=row.details,
                          inputs_hash=row.inputs_hash, evaluated_at=row.evaluated_at)
    return verdict, row.inputs
