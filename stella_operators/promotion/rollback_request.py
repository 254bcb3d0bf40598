"""A rollback someone asks for: redeploy an earlier verified release's exact digest set.

It is a promotion of that release into the environment (same ledger record, deploy engine, deploy
lock with its lease, and recovery rules), marked as a rollback when requested, with two
differences:
- the release must have been verified in this environment before (never something new);
- emergency mode skips the gates and the approvals (there is no metric analysis yet; when there
  is, emergency mode skips it too) -- recorded as signed `override` evidence, never silently.
When the run ends, a signed `rollback` record names the state it left (release, digests per
target), the state it returned to, who asked and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from stella_operators.evidence.recorder import record_evidence
from stella_operators.ledger.protocols import AuditLog, DeploymentBook, EvidenceBook, PromotionBook, ReleaseBook
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import Release

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.promotion.model import Promotion

# How many of an app's promotions (newest first) are searched for releases verified before.
HISTORY = 5000
SKIPPED_IN_EMERGENCY = ("gates", "approvals")


class RollbackLedger(ReleaseBook, PromotionBook, DeploymentBook, EvidenceBook, AuditLog, Protocol):
    """What a requested rollback reads and writes."""


class RollbackRefused(RuntimeError):
    """The rollback may not start; nothing was changed. The message says why and what to choose."""


@dataclass(frozen=True)
class RollbackRequest:
    app: str
    environment: str
    release: str          # name or id; empty: the last release verified here before the current one
    requested_by: str
    reason: str
    emergency: bool = False
    dag_id: str = ""
    run_id: str = ""


class _History(ReleaseBook, PromotionBook, Protocol):
    pass


def verified_releases(ledger: _History, app: str, environment: str) -> list[tuple[Release, datetime]]:
    """Each release ever verified in the environment with when it was first verified, oldest first."""
    first: dict[str, datetime] = {}
    for p in ledger.recent_promotions(HISTORY, app=app):
        if p.environment == environment and p.status == S.DEPLOYED:
            at = p.updated_at or p.requested_at  # `deployed` is terminal: its last update is when it got there
            first[p.release_id] = min(at, first.get(p.release_id, at))
    ordered = sorted(first.items(), key=lambda item: item[1])
    return [(ledger.get_release(rid), at) for rid, at in ordered]


def rollback_choices(ledger: RollbackLedger, app: str, environment: str) -> tuple[Release | None, list[Release]]:
    """(the release verified here now, the releases one may roll back to: verified here, newest first)."""
    current = ledger.deployed_release(app, environment)
    history = verified_releases(ledger, app, environment)
    allowed = [r for r, _ in reversed(history) if current is None or r.id != current.id]
    return current, allowed


def choose_release(ledger: RollbackLedger, app: str, environment: str, wanted: str) -> tuple[Release, Release]:
    """(release to return to, release running now). Default: the newest release first verified here
    before the current one was. A named release must have been verified here, and not be the current one."""
    current, allowed = rollback_choices(ledger, app, environment)
    if current is None:
        raise RollbackRefused(f"nothing was ever verified for {app} in {environment}: there is nothing to roll "
                              "back from; promote a release instead")
    names = ", ".join(f"{r.name} ({r.id})" for r in allowed) or "none"
    wanted = (wanted or "").strip()
    if not wanted:
        history = verified_releases(ledger, app, environment)
        since = next(at for r, at in history if r.id == current.id)
        earlier = [r for r, at in reversed(history) if at < since and r.id != current.id]
        if not earlier:
            raise RollbackRefused(f"{app} in {environment} runs {current.name}, and no release was verified here "
                                  f"before it; name one of the releases verified here: {names}")
        return earlier[0], current
    if wanted in (current.name, current.id):
        raise RollbackRefused(f"{app} in {environment} already runs {current.name}; roll back to one of: {names}")
    for r in allowed:
        if wanted in (r.name, r.id):
            return r, current
    raise RollbackRefused(f"release {wanted!r} was never verified for {app} in {environment}, so it cannot be "
                          f"rolled back to; releases verified here (newest first): {names}")


def request_rollback(estate: Estate, ledger: RollbackLedger, key: SigningKey, req: RollbackRequest) -> Promotion:
    """Record the rollback as a promotion of the chosen release (status `evaluating`, or `approved`
    in emergency mode, with signed `override` evidence naming what was skipped). Idempotent per run."""
    if req.environment not in {e.name for e in estate.app_environments(req.app)}:
        raise RollbackRefused(f"app {req.app} is not deployed to environment {req.environment!r}")
    reason = (req.reason or "").strip()
    if not reason:
        raise RollbackRefused("give a reason for the rollback (it goes into the ledger and the evidence); "
                              "white space alone is not a reason")
    if req.dag_id and req.run_id:
        existing = ledger.find_promotion_by_run(req.dag_id, req.run_id)
        if existing is not None:  # a retried task: the rollback was chosen and recorded already
            return existing
    release, current = choose_release(ledger, req.app, req.environment, req.release)
    release.check_integrity()
    info = {"from_release_id": current.id, "from_release_name": current.name, "to_release_id": release.id,
            "to_release_name": release.name, "emergency": req.emergency, "reason": reason}
    promo = ledger.create_promotion(app=req.app, environment=req.environment, release_id=release.id,
                                    requested_by=req.requested_by,
                                    reason=f"rollback from {current.name}: {reason}",
                                    dag_id=req.dag_id or None, run_id=req.run_id or None)
    ledger.transition(promo.id, S.EVALUATING, actor=req.requested_by, detail={"rollback": info})
    if req.emergency:
        record_evidence(ledger, key, "override", release, {
            "kind": "emergency_rollback", "environment": req.environment, "promotion_id": promo.id,
            "skipped": list(SKIPPED_IN_EMERGENCY), "requested_by": req.requested_by, "reason": reason,
            "from_release": {"id": current.id, "name": current.name}}, promotion_id=promo.id)
        ledger.transition(promo.id, S.APPROVED, actor=req.requested_by,
                          detail={"emergency": True, "skipped": list(SKIPPED_IN_EMERGENCY), "reason": reason})
    return ledger.get_promotion(promo.id)


def rollback_info(ledger: AuditLog, promotion_id: str) -> dict[str, Any] | None:
    """What the rollback request recorded (from, to, emergency, reason); None: not a requested rollback."""
    for e in ledger.audit_events(f"promotion:{promotion_id}"):
        detail = (e.detail or {}).get("detail") or {}
        if e.action == "promotion.transition" and "rollback" in detail:
            return dict(detail["rollback"])
    return None


def approved_in_emergency(ledger: AuditLog, promotion_id: str) -> bool:
    """Whether the promotion was approved by an emergency rollback request (gates skipped, so the
    freeze gate is not checked again at deploy time either)."""
    for e in ledger.audit_events(f"promotion:{promotion_id}"):
        if e.action == "promotion.transition" and (e.detail or {}).get("to") == S.APPROVED:
            return bool(((e.detail or {}).get("detail") or {}).get("emergency"))
    return False


def record_rollback_outcome(ledger: RollbackLedger, key: SigningKey, promotion_id: str) -> tuple[bool, dict[str, Any]]:
    """Seal the `rollback` record of a requested rollback, whatever became of it: (returned, content).
    Idempotent: a second call returns the record already written."""
    promo = ledger.get_promotion(promotion_id)
    info = rollback_info(ledger, promotion_id)
    if info is None:
        raise RollbackRefused(f"promotion {promotion_id} is not a requested rollback")
    returned = promo.status == S.DEPLOYED
    for ev in ledger.evidence_for(promotion_id=promotion_id):
        if str(ev.type) == "rollback" and ev.content.get("kind") == "requested_rollback":
            return returned, ev.content
    deployments = ledger.deployments_for(promotion_id)
    dep = deployments[-1] if deployments else None
    release = ledger.get_release(promo.release_id)
    content: dict[str, Any] = {
        "kind": "requested_rollback", "environment": promo.environment, "promotion_id": promotion_id,
        "status": str(promo.status), "requested_by": promo.requested_by, "reason": info["reason"],
        "emergency": bool(info.get("emergency")),
        "skipped": list(SKIPPED_IN_EMERGENCY) if info.get("emergency") else [],
        "left": {"release_id": info["from_release_id"], "release_name": info["from_release_name"],
                 "targets": dict(dep.previous) if dep is not None else None},
        "returned_to": {"release_id": release.id, "release_name": release.name,
                        "targets": {t.target: dict(t.digests) for t in dep.targets} if dep is not None else None}
        if returned else None,
        "deployment_id": dep.id if dep is not None else None,
    }
    if not returned:
        content["error"] = (f"the rollback to {release.name} ended {promo.status}; the environment keeps "
                            f"what it ran before (see the promotion's deployment and rollback records)")
    record = record_evidence(ledger, key, "rollback", release, content, promotion_id=promotion_id)
    return returned, record.content
