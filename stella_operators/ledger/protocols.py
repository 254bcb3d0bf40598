"""What the services need from the ledger, one Protocol per concept.

The `Ledger` (SQLAlchemy, SQLite or PostgreSQL) implements all of them; a service names only the
concepts it uses (e.g. the approval service: releases, promotions, approvals, evidence), so a
reader sees what a use case touches, and mypy checks every call against the concept's contract.

This module is a leaf: the record types are imported for type checking only, so any package may
import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stella_operators.evidence.envelope import EvidenceRecord
    from stella_operators.evidence.keys import TrustedKeys
    from stella_operators.gates.contract import GateVerdict
    from stella_operators.ledger.audit import AuditEvent
    from stella_operators.ledger.decisions import ApprovalWrite, ApprovalWritten, Settlement
    from stella_operators.ledger.locks import DeployLock, LockClaim, LockScope
    from stella_operators.ledger.records import Approval, Deployment, DeploymentStatus, TargetResult
    from stella_operators.promotion.model import Promotion
    from stella_operators.promotion.state import PromotionStatus
    from stella_operators.release.model import Release
    from stella_operators.targets.contract import VersionSticker


class ReleaseBook(Protocol):
    """Sealed releases: stored once, never changed."""

    def add_release(self, release: Release, *, actor: str | None = None) -> Release: ...
    def get_release(self, release_id: str) -> Release: ...
    def find_release(self, app: str, name: str) -> Release | None: ...
    def list_releases(self, app: str) -> list[Release]: ...


class PromotionBook(Protocol):
    """Promotions and their state machine; which release each environment verified."""

    def create_promotion(self, app: str, environment: str, release_id: str, requested_by: str, reason: str = "",
                         dag_id: str | None = None, run_id: str | None = None) -> Promotion: ...
    def get_promotion(self, promotion_id: str) -> Promotion: ...
    def find_promotion_by_run(self, dag_id: str, run_id: str) -> Promotion | None: ...
    def transition(self, promotion_id: str, new_status: PromotionStatus | str, *, actor: str,
                   detail: dict[str, Any] | None = None) -> Promotion: ...
    def set_decision(self, promotion_id: str, decision: dict[str, Any], *, actor: str = "system") -> Promotion: ...
    def latest_promotion(self, app: str, environment: str,
                         status: PromotionStatus | str | None = None) -> Promotion | None: ...
    def deployed_release(self, app: str, environment: str) -> Release | None: ...
    def was_deployed(self, app: str, environment: str, release_id: str) -> bool: ...
    def promotions_with_status(self, status: PromotionStatus | str, app: str | None = None,
                               environment: str | None = None) -> list[Promotion]: ...
    def recent_promotions(self, limit: int = 50, app: str | None = None) -> list[Promotion]: ...


class ApprovalBook(Protocol):
    """Approval attempts (append-only), decided and settled in one transaction."""

    def record_approval(self, promotion_id: str, approver: str, decision: str, comment: str, content_hash: str,
                        *, counted: bool, refusal: str | None = None,
                        evidence_id: str | None = None) -> Approval: ...
    def write_approval_decision(self, promotion_id: str,
                                plan: Callable[[Promotion, list[Approval]], ApprovalWrite]) -> ApprovalWritten: ...
    def approvals_for(self, promotion_id: str) -> list[Approval]: ...


class GateBook(Protocol):
    """Gate verdicts with the inputs they were decided from (append-only)."""

    def record_gate_verdicts(self, promotion_id: str, items: Iterable[tuple[GateVerdict, dict[str, Any]]], *,
                             actor: str = "system") -> None: ...
    def record_gate_decision(self, promotion_id: str, items: Iterable[tuple[GateVerdict, dict[str, Any]]],
                             decision: dict[str, Any], sealed: Iterable[EvidenceRecord], settle: Settlement, *,
                             actor: str = "stella") -> Promotion: ...
    def gate_verdicts_for(self, promotion_id: str) -> list[tuple[GateVerdict, dict[str, Any]]]: ...


class DeploymentBook(Protocol):
    """Deployments and what happened on each target."""

    def start_deployment(self, promotion_id: str, strategy: str, previous: dict[str, dict[str, str]], *,
                         actor: str = "system") -> str: ...
    def finish_deployment(self, deployment_id: str, status: DeploymentStatus | str, error: str | None = None, *,
                          actor: str = "system") -> Deployment: ...
    def add_target_result(self, deployment_id: str, target: str, status: str, digests: Mapping[str, str | None],
                          timings: dict[str, int] | None = None, log: str = "",
                          sticker: VersionSticker | dict[str, Any] | None = None, *,
                          actor: str = "system") -> TargetResult: ...
    def deployments_for(self, promotion_id: str) -> list[Deployment]: ...


class DeployLocks(Protocol):
    """Per (app, environment) deploy locks with a lease."""

    def acquire_deploy_lock(self, app: str, environment: str, promotion_id: str, holder: str, *,
                            scope: LockScope = "app", lease_s: float = ...,
                            actor: str = "system") -> LockClaim: ...
    def renew_deploy_lock(self, app: str, environment: str, promotion_id: str, *, scope: LockScope = "app",
                          lease_s: float = ...) -> bool: ...
    def release_deploy_lock(self, app: str, environment: str, promotion_id: str, *, scope: LockScope = "app",
                            actor: str = "system") -> bool: ...
    def deploy_lock(self, app: str, environment: str, *, scope: LockScope = "app") -> DeployLock | None: ...
    def deploy_lock_is_stale(self, lock: DeployLock) -> bool: ...
    def locks_held_by(self, promotion_id: str) -> list[DeployLock]: ...


class EvidenceBook(Protocol):
    """Sealed evidence records (append-only) and the keys that signed them (not a trust root)."""

    def append_evidence(self, record: EvidenceRecord, promotion_id: str | None = None,
                        release_id: str | None = None, *, actor: str = "system") -> EvidenceRecord: ...
    def public_key_pems(self, key_ids: set[str]) -> dict[str, str]: ...
    def get_evidence(self, evidence_id: str) -> EvidenceRecord: ...
    def evidence_for(self, promotion_id: str | None = None, release_id: str | None = None, *,
                     release_only: bool = False) -> list[EvidenceRecord]: ...
    def register_key(self, key_id: str, public_pem: bytes | str, *, actor: str = "system") -> str: ...
    def registered_keys(self) -> TrustedKeys: ...


class AuditLog(Protocol):
    """The hash-chained audit log."""

    def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> AuditEvent: ...
    def audit_events(self, subject: str | None = None) -> list[AuditEvent]: ...
    def verify_audit_chain(self) -> tuple[bool, int | None]: ...


# -- what each use case reads and writes ------------------------------------------------------------

class ReleaseLedger(ReleaseBook, EvidenceBook, Protocol):
    """Cutting a release: store it sealed, with its evidence."""


class PromotingLedger(ReleaseBook, PromotionBook, Protocol):
    """Requesting a promotion, and checking the upstream promotion an automatic one follows."""


class ApprovalLedger(ReleaseBook, PromotionBook, ApprovalBook, EvidenceBook, Protocol):
    """Submitting, tallying and settling approvals."""


class GatingLedger(ReleaseBook, PromotionBook, GateBook, EvidenceBook, Protocol):
    """Deciding a promotion's gates (and re-checking the freeze at deploy time)."""


class DeployLedger(ReleaseBook, PromotionBook, ApprovalBook, GateBook, DeploymentBook, DeployLocks, EvidenceBook,
                   AuditLog, Protocol):
    """Requesting, deploying (checking the approved plan), verifying, recovering and aborting promotions."""


class ReadLedger(ReleaseBook, PromotionBook, ApprovalBook, GateBook, DeploymentBook, EvidenceBook, AuditLog,
                 Protocol):
    """What the pages, "why?" and replay read."""


class FullLedger(ReadLedger, DeployLocks, Protocol):
    """Everything: what the Airflow hooks hand to operators, the API and the CLI."""
