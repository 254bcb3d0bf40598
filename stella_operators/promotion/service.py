"""Promotion use cases: request (checks the path), deploy (two-phase, rollback), verify (facts)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from stella_operators.deploy.engine import run_deployment
from stella_operators.deploy.planner import plan_deployment
from stella_operators.estate.models import Estate, TargetConfig
from stella_operators.evidence.recorder import record_evidence
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import Release
from stella_operators.targets.contract import Target

TargetFactory = Callable[[TargetConfig], Target]


class PromotionRefused(RuntimeError):
    """The promotion may not proceed; nothing was deployed. The message says why and what to do."""


class DeploymentFailed(RuntimeError):
    """The deployment failed; targets were rolled back (or the failure is recorded as such)."""


@dataclass(frozen=True)
class PromotionRequest:
    app: str
    environment: str
    release: str          # release id or name
    requested_by: str
    reason: str
    dag_id: str = ""
    run_id: str = ""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def find_release(ledger, app: str, ref: str) -> Release | None:
    """A release of `app` by name, or by id (`rel-...`)."""
    from stella_operators.ledger import NotFound

    if ref.startswith("rel-"):
        try:
            rel = ledger.get_release(ref)
            return rel if rel.app == app else None
        except NotFound:
            pass
    return ledger.find_release(app, ref)


def request_promotion(estate: Estate, ledger, key, req: PromotionRequest):
    """Record the request and decide it. Refusals are recorded (status rejected + evidence) and raised."""
    if req.app not in {a.name for a in estate.apps}:
        raise PromotionRefused(f"unknown app {req.app!r}")
    if req.environment not in {e.name for e in estate.app_environments(req.app)}:
        raise PromotionRefused(f"app {req.app} is not deployed to environment {req.environment!r}")
    release = find_release(ledger, req.app, req.release)
    if release is None:
        raise PromotionRefused(f"no release {req.release!r} for app {req.app}; create it with the "
                               f"stella_release__{req.app} DAG or `stella release create`")
    release.check_integrity()
    promo = ledger.create_promotion(app=req.app, environment=req.environment, release_id=release.id,
                                    requested_by=req.requested_by, reason=req.reason,
                                    dag_id=req.dag_id, run_id=req.run_id)
    ledger.transition(promo.id, S.EVALUATING, actor=req.requested_by)
    checks = []
    for upstream in estate.upstream(req.environment):
        ok = ledger.was_deployed(req.app, upstream, release.id)
        checks.append({"check": "upstream_verified", "environment": upstream, "pass": ok})
    blocked = [c for c in checks if not c["pass"]]
    decision = {"verdict": "fail" if blocked else "pass", "checks": checks,
                "requested_by": req.requested_by, "reason": req.reason}
    ledger.set_decision(promo.id, decision)
    record_evidence(ledger, key, "promotion", release, {
        "environment": req.environment, "promotion_id": promo.id, "decision": decision,
        "airflow": {"dag_id": req.dag_id, "run_id": req.run_id}}, promotion_id=promo.id)
    if blocked:
        ledger.transition(promo.id, S.REJECTED, actor="stella", detail=decision)
        envs = ", ".join(c["environment"] for c in blocked)
        raise PromotionRefused(
            f"release {release.name} ({release.id}) has not been deployed and verified in {envs}; "
            f"promote it there first (promotion {promo.id} recorded as rejected)")
    ledger.transition(promo.id, S.APPROVED, actor="stella", detail=decision)
    return ledger.get_promotion(promo.id)


def deploy_promotion(estate: Estate, ledger, key, promotion_id: str, targets: TargetFactory):
    """Deploy an approved promotion to every target of its environment; roll back on any failure."""
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    release.check_integrity()
    env = estate.environment(promo.environment)
    previous = ledger.deployed_release(promo.app, promo.environment)
    ledger.transition(promotion_id, S.DEPLOYING, actor="stella")
    deployment_id = ledger.start_deployment(
        promotion_id, env.strategy, previous={t.name: previous.digests() for t in env.targets} if previous else {})
    try:
        plans = plan_deployment(estate, release, environment=env.name, promotion_id=promotion_id,
                                deployment_id=deployment_id)
        pairs = [(targets(t), p) for t, p in zip(env.targets, plans)]
        outcome = run_deployment(pairs, max_parallel=env.max_parallel, timeout_s=env.deploy_timeout_s)
    except Exception as exc:  # could not even plan/connect: nothing was started
        ledger.finish_deployment(deployment_id, "failed", error=str(exc))
        ledger.transition(promotion_id, S.FAILED, actor="stella", detail={"error": str(exc)})
        record_evidence(ledger, key, "deployment", release, {
            "environment": env.name, "promotion_id": promotion_id, "deployment_id": deployment_id,
            "status": "failed", "error": str(exc)}, promotion_id=promotion_id)
        raise DeploymentFailed(f"deployment {deployment_id} could not start: {exc}") from exc
    for t in outcome.targets:
        ledger.add_target_result(deployment_id, t.target, t.status, digests=t.digests_after,
                                 timings=t.timings_ms, log="\n".join(t.log), sticker=None)
    content = {
        "environment": env.name, "promotion_id": promotion_id, "deployment_id": deployment_id,
        "strategy": env.strategy, "status": outcome.status,
        "previous": {"release_id": previous.id, "digests": previous.digests()} if previous else None,
        "targets": [{"target": t.target, "status": t.status, "before": t.digests_before,
                     "after": t.digests_after, "error": t.error} for t in outcome.targets],
        "error": outcome.error,
    }
    if outcome.status in ("deployed", "unchanged"):
        ledger.finish_deployment(deployment_id, "succeeded")
        ledger.transition(promotion_id, S.VERIFYING, actor="stella")
        return outcome
    evidence_type = "rollback" if outcome.status == "rolled_back" else "deployment"
    ledger.finish_deployment(deployment_id, outcome.status, error=outcome.error)
    record_evidence(ledger, key, evidence_type, release, content, promotion_id=promotion_id)
    final = S.ROLLED_BACK if outcome.status == "rolled_back" else S.FAILED
    ledger.transition(promotion_id, final, actor="stella", detail={"error": outcome.error})
    raise DeploymentFailed(f"deployment {deployment_id} {outcome.status}: {outcome.error}")


def verify_promotion(estate: Estate, ledger, key, promotion_id: str, targets: TargetFactory) -> dict:
    """Read facts on every target; all must run exactly the release digests. Then `deployed`."""
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    env = estate.environment(promo.environment)
    want = release.digests()
    observed, problems = {}, []
    for t in env.targets:
        facts = targets(t).facts(release.app)
        got = facts.digests()
        observed[t.name] = got
        for comp, digest in want.items():
            if got.get(comp) != digest:
                problems.append(f"{t.name} runs {got.get(comp)} for {comp}, planned {digest}")
        # Same digest set, same content hash: a sticker from an earlier release with identical
        # digests is still true (containers are not restarted just to relabel them).
        if facts.sticker is None or facts.sticker.content_hash != release.content_hash:
            problems.append(f"{t.name} carries no sticker for the digest set {release.content_hash}")
    content = {"environment": env.name, "promotion_id": promotion_id, "observed": observed,
               "status": "verified" if not problems else "verification_failed", "problems": problems}
    record_evidence(ledger, key, "deployment", release, content, promotion_id=promotion_id)
    if problems:
        ledger.transition(promotion_id, S.FAILED, actor="stella", detail={"problems": problems})
        raise DeploymentFailed("verification failed: " + "; ".join(problems))
    ledger.transition(promotion_id, S.DEPLOYED, actor="stella")
    return {"release_id": release.id, "release_name": release.name, "environment": env.name,
            "content_hash": release.content_hash, "digests": want}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"
