"""Promotion use cases: request (checks the path), deploy (two-phase, rollback), verify (facts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


class EnvironmentLocked(RuntimeError):
    """Another promotion is deploying into this environment; nothing was changed."""

    def __init__(self, environment: str, holder: str):
        super().__init__(f"environment {environment} is locked by promotion {holder}")
        self.environment = environment
        self.holder = holder


@dataclass(frozen=True)
class PromotionRequest:
    app: str
    environment: str
    release: str          # release id or name
    requested_by: str
    reason: str
    dag_id: str = ""
    run_id: str = ""
    # What started an automatic promotion (promotion/auto_promote.py): recorded with the request.
    trigger: dict[str, Any] | None = None


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


def request_promotion(estate: Estate, ledger, req: PromotionRequest):
    """Record the request (status `evaluating`); the gates decide next (promotion/gating.py)."""
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
    if promo.status == S.REQUESTED:  # a retried task finds its promotion already further along
        ledger.transition(promo.id, S.EVALUATING, actor=req.requested_by,
                          detail={"trigger": req.trigger} if req.trigger else None)
    return ledger.get_promotion(promo.id)


def deploy_promotion(estate: Estate, ledger, key, promotion_id: str, targets: TargetFactory, *, holder: str = ""):
    """Deploy an approved promotion to every target of its environment; roll back on any failure.

    Holds the environment lock for the whole deployment; raises EnvironmentLocked (changing
    nothing) when another promotion holds it.
    """
    promo = ledger.get_promotion(promotion_id)
    locked_by = ledger.acquire_environment_lock(promo.environment, promotion_id, holder or promotion_id)
    if locked_by is not None:
        raise EnvironmentLocked(promo.environment, locked_by)
    try:
        return _deploy_locked(estate, ledger, key, promo, targets)
    finally:
        ledger.release_environment_lock(promo.environment, promotion_id)


def _deploy_locked(estate: Estate, ledger, key, promo, targets: TargetFactory):
    promotion_id = promo.id
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
