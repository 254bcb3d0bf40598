"""Promotion use cases: request (checks the path), deploy (two-phase, rollback), verify (facts).

A deployment holds the deploy lock of (app, environment) -- or of the environment -- from the
deploy step until verification ends, renewing its lease while it works. The old workloads are
kept (stopped) until verification passes, so any failure up to then rolls every host back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from stella_operators.approvals.plans import approved_plans
from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome, TargetStatus
from stella_operators.deploy.planner import plan_deployment
from stella_operators.deploy.preview import PREVIEW_ID, plan_differences, plan_from_facts
from stella_operators.deploy.rollback import finalize_targets
from stella_operators.estate.models import Environment, Estate, TargetConfig
from stella_operators.evidence.recorder import record_evidence
from stella_operators.ledger.records import DeploymentStatus
from stella_operators.promotion.freeze_check import check_freeze_at_deploy
from stella_operators.promotion.lease import LeaseKeeper
from stella_operators.promotion.recovery import roll_back_promotion, target_address
from stella_operators.promotion.rollback_request import approved_in_emergency
from stella_operators.promotion.state import TERMINAL_STATUSES
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.promotion.strategies import (
    batch_count,
    later_targets,
    policy_of,
    run_strategy,
    targets_to_verify,
)
from stella_operators.release.model import Release
from stella_operators.targets.contract import Target, TargetFacts

if TYPE_CHECKING:
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import DeployLedger, DeploymentBook, PromotingLedger, ReleaseBook
    from stella_operators.promotion.model import Promotion
    from stella_operators.promotion.recovery import RollbackReport

TargetFactory = Callable[[TargetConfig], Target]
PLAN_CHANGED = "plan.changed"  # the live plan at deploy time is not the approved one


class PromotionRefused(RuntimeError):
    """The promotion may not proceed; nothing was deployed. The message says why and what to do."""


class DeploymentFailed(RuntimeError):
    """The deployment failed; targets were rolled back (or the failure is recorded as such)."""


class EnvironmentLocked(RuntimeError):
    """Another promotion is deploying here (same app, or the environment when locked as a whole);
    nothing was changed."""

    def __init__(self, environment: str, holder: str, app: str = "*"):
        what = f"environment {environment}" if app == "*" else f"app {app} in environment {environment}"
        super().__init__(f"{what} is locked by promotion {holder}")
        self.environment = environment
        self.holder = holder
        self.app = app


class FrozenAtDeploy(RuntimeError):
    """A freeze window is active at deploy time and the freeze gate says `at_deploy: wait`: try
    again at `opens_at`. Nothing was changed and no lock is held."""

    def __init__(self, message: str, opens_at: datetime):
        super().__init__(message)
        self.opens_at = opens_at


class DeploymentInterrupted(BaseException):
    """Raised into a deployment when its task is killed (Airflow's on_kill): a BaseException so
    that no `except Exception` on the way swallows it; the deployment rolls back and re-raises."""


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


def find_release(ledger: ReleaseBook, app: str, ref: str) -> Release | None:
    """A release of `app` by name, or by id (`rel-...`)."""
    from stella_operators.ledger import NotFound

    if ref.startswith("rel-"):
        try:
            rel = ledger.get_release(ref)
            return rel if rel.app == app else None
        except NotFound:
            pass
    return ledger.find_release(app, ref)


def request_promotion(estate: Estate, ledger: PromotingLedger, req: PromotionRequest) -> Promotion:
    """Record the request (status `evaluating`); the gates decide next (promotion/gating.py)."""
    if req.app not in {a.name for a in estate.apps}:
        raise PromotionRefused(f"unknown app {req.app!r}")
    if req.environment not in {e.name for e in estate.app_environments(req.app)}:
        raise PromotionRefused(f"app {req.app} is not deployed to environment {req.environment!r}")
    if not (req.reason or "").strip():
        raise PromotionRefused("give a reason for the promotion (it goes into the ledger and the evidence); "
                               "white space alone is not a reason")
    req = replace(req, reason=req.reason.strip())
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


def deploy_promotion(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str,
                     targets: TargetFactory, *, holder: str = "", batch: int | None = None) -> DeploymentOutcome:
    """Deploy an approved promotion to every target of its environment; roll back on any failure.

    - a freeze window active now: FrozenAtDeploy (`at_deploy: wait`) or DeploymentFailed (`fail`);
    - the deploy lock held by a live promotion: EnvironmentLocked, nothing changed; a stale lock
      (finished holder, lease run out) is taken over and its deployment rolled back first;
    - a retry that finds its own promotion `deploying` (the worker died): rolls it back, ends it
      `rolled_back` and raises DeploymentFailed; `verifying` or `deployed`: nothing to do;
    - interrupted (time-out, kill) while deploying: rolls back, then re-raises.
    On success the promotion is `verifying` and still holds the lock (verify_promotion releases it).
    `batch=0` (rolling, one DAG task per batch): run the first batch only; the promotion stays
    `deploying` with the lock held for the next batches (promotion/batches.py).
    """
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    if promo.status in (S.VERIFYING, S.DEPLOYED):  # a retry after the work was done
        return _recorded_outcome(ledger, promotion_id)
    if promo.status in TERMINAL_STATUSES:
        raise DeploymentFailed(f"promotion {promotion_id} is {promo.status}; nothing to deploy")
    if promo.status == S.APPROVED and not approved_in_emergency(ledger, promo.id):
        _check_freeze(estate, ledger, key, promo)
    claim = ledger.acquire_deploy_lock(promo.app, env.name, promotion_id, holder or promotion_id,
                                       scope=env.lock_scope, lease_s=env.lock_lease_s, actor="stella")
    if not claim.acquired:
        assert claim.holder is not None  # a refused claim names the lock's holder
        raise EnvironmentLocked(env.name, claim.holder.promotion_id, claim.holder.app)
    if claim.took_over is not None:
        roll_back_promotion(estate, ledger, key, claim.took_over.promotion_id, targets,
                            reason=f"its deploy lock was taken over by promotion {promotion_id} "
                                   f"({(claim.stale_reason or 'stale').replace('_', ' ')})")
    if promo.status == S.DEPLOYING:  # our own earlier attempt died mid-deployment
        report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                     reason="the deploy task was interrupted (its worker died); retried")
        raise DeploymentFailed(f"promotion {promotion_id}: an earlier attempt of the deploy task was interrupted; "
                               f"{_said(report)}")
    with LeaseKeeper(ledger, promo.app, env.name, promotion_id, scope=env.lock_scope, lease_s=env.lock_lease_s):
        try:
            return _deploy_locked(estate, ledger, key, promo, targets, batch)
        except DeploymentFailed:
            raise
        except BaseException as exc:  # interrupted (AirflowTaskTimeout, DeploymentInterrupted) or a bug
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if ledger.get_promotion(promotion_id).status in (S.DEPLOYING, S.VERIFYING):
                roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                    reason=f"the deployment was interrupted ({what})")
            else:
                ledger.release_deploy_lock(promo.app, env.name, promotion_id, scope=env.lock_scope, actor="stella")
            raise


def _said(report: RollbackReport) -> str:
    if report.ok:
        return "every host was rolled back to what it ran before"
    return f"rollback incomplete, not restored: {', '.join(report.not_restored)}"


def _check_freeze(estate: Estate, ledger: DeployLedger, key: SigningKey, promo: Promotion) -> None:
    frozen = check_freeze_at_deploy(estate, ledger, promo.id)
    if frozen is None:
        return
    if frozen.action == "wait" and frozen.opens_at is not None:
        raise FrozenAtDeploy(f"frozen at deploy time: {frozen.message}", frozen.opens_at)
    release = ledger.get_release(promo.release_id)
    reasons = sorted({r for v in frozen.verdicts for r in v.reasons})
    _end_not_started(ledger, key, promo, release, "freeze.at_deploy",
                     evidence={"gates": [v.gate_name for v in frozen.verdicts], "reasons": reasons,
                               "error": frozen.message},
                     detail={"reasons": reasons, "message": frozen.message})
    raise DeploymentFailed(f"not deployed: a freeze window is active at deploy time: {frozen.message}")


def _recorded_outcome(ledger: DeploymentBook, promotion_id: str) -> DeploymentOutcome:
    deps = ledger.deployments_for(promotion_id)
    if not deps:
        return DeploymentOutcome(status="unchanged", targets=[])
    dep = deps[-1]
    return DeploymentOutcome(status="deployed", deployment_id=dep.id,
                             targets=[TargetOutcome(target=t.target, status=cast(TargetStatus, t.status),
                                                   digests_after=dict(t.digests))
                                      for t in dep.targets])


def _deploy_locked(estate: Estate, ledger: DeployLedger, key: SigningKey, promo: Promotion,
                   targets: TargetFactory, batch: int | None) -> DeploymentOutcome:
    promotion_id = promo.id
    release = ledger.get_release(promo.release_id)
    release.check_integrity()
    env = estate.environment(promo.environment)
    previous_release = ledger.deployed_release(promo.app, promo.environment)
    # Facts are read while the promotion is still `approved`: a stop here (plan changed) or a
    # worker dying here leaves nothing to roll back, and a retry reads them again.
    try:
        connected, before, facts = [], {}, {}
        for config in env.targets:
            target = None
            try:
                target = targets(config)
                facts[config.name] = target.facts(release.app)
                before[config.name] = {c: d for c, d in facts[config.name].digests().items() if d}
            except Exception as exc:
                where = target_address(target) if target is not None else config.name
                raise RuntimeError(f"{where}: {exc}") from exc
            connected.append(target)
    except Exception as exc:  # could not even connect or look: nothing was started
        deployment_id = ledger.start_deployment(promotion_id, env.strategy, previous={})
        ledger.finish_deployment(deployment_id, "failed", error=str(exc))
        ledger.transition(promotion_id, S.FAILED, actor="stella", detail={"error": str(exc)})
        record_evidence(ledger, key, "deployment", release, {
            "environment": env.name, "promotion_id": promotion_id, "deployment_id": deployment_id,
            "status": "failed", "error": str(exc)}, promotion_id=promotion_id)
        ledger.release_deploy_lock(promo.app, env.name, promotion_id, scope=env.lock_scope, actor="stella")
        raise DeploymentFailed(f"deployment {deployment_id} could not start: {exc}") from exc
    _check_approved_plan(estate, ledger, key, promo, release, facts)
    ledger.transition(promotion_id, S.DEPLOYING, actor="stella")
    # What each target runs now is what a rollback restores: recorded before anything changes.
    deployment_id = ledger.start_deployment(promotion_id, env.strategy, previous=before)
    plans = plan_deployment(estate, release, environment=env.name, promotion_id=promotion_id,
                            deployment_id=deployment_id)
    pairs = list(zip(connected, plans, strict=True))
    if batch is not None:  # the first batch of several: its targets only (all were read above)
        first = set(_batch_targets(env, batch))
        pairs = [(t, p) for t, p in pairs if t.name in first]
    outcome = run_strategy(env, ledger, deployment_id, pairs, batch=batch)
    return settle_outcome(estate, ledger, key, promo, release, deployment_id, outcome, targets, batch=batch,
                          previous_release=previous_release)


def _batch_targets(env: Environment, batch: int) -> list[str]:
    if env.strategy == "ab":  # a stage may start or stop a target of either group
        return [t.name for t in env.targets]
    return list(policy_of(env).batches[batch])


def settle_outcome(estate: Estate, ledger: DeployLedger, key: SigningKey, promo: Promotion, release: Release,
                   deployment_id: str, outcome: DeploymentOutcome, targets: TargetFactory, *, batch: int | None,
                   previous_release: Release | None, earlier_batches_changed: bool = False) -> DeploymentOutcome:
    """Record what the strategy did and move the promotion on: `verifying` (the last batch, or the
    whole deployment, succeeded), still `deploying` (more batches to come), `failed` (paused, with
    what is left for a human) or rolled back."""
    promotion_id = promo.id
    env = estate.environment(promo.environment)
    ran = [t for t in outcome.targets if batch is None or t.target in _batch_targets(env, batch)]
    for t in ran:
        ledger.add_target_result(deployment_id, t.target, t.status, digests=t.digests_after,
                                 timings=t.timings_ms, log="\n".join(t.log),
                                 sticker=t.sticker if t.status == "deployed" else None)
    content: dict[str, Any] = {
        "environment": env.name, "promotion_id": promotion_id, "deployment_id": deployment_id,
        "strategy": env.strategy, "status": outcome.status,
        "previous": {"release_id": previous_release.id, "release_name": previous_release.name,
                     "digests": previous_release.digests()}
        if previous_release else None,
        "targets": [{"target": t.target, "status": t.status, "before": t.digests_before,
                     "after": t.digests_after, "error": t.error} for t in ran],
        "error": outcome.error,
    }
    if batch is not None:
        content["batch"] = batch + 1
    for extra in ("skipped", "group", "previous_group"):
        if getattr(outcome, extra, None):
            content[extra] = getattr(outcome, extra)
    if outcome.status in ("deployed", "unchanged"):
        if batch is not None and batch < batch_count(env) - 1:
            return outcome  # the next batch task goes on, under the same lock
        if env.strategy == "canary":
            return outcome  # the step tasks go on, under the same lock (promotion/canary.py)
        # The deployment stays `running` (old workloads kept, lock held) until verification.
        ledger.transition(promotion_id, S.VERIFYING, actor="stella")
        return outcome
    if outcome.status == "paused":
        _end_paused(ledger, key, promo, release, deployment_id, outcome, content,
                    pending=list(getattr(outcome, "pending", [])) + later_targets(env, batch))
    if earlier_batches_changed:  # earlier batch tasks changed hosts: restore all from the ledger
        ledger.audit("stella", "deployment.batch_failed", f"deployment:{deployment_id}",
                     {"batch": (batch or 0) + 1, "error": outcome.error})
        report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                     reason=f"batch {(batch or 0) + 1} failed: {outcome.error}")
        raise DeploymentFailed(f"deployment {deployment_id}: batch {(batch or 0) + 1} failed: {outcome.error}; "
                               f"{_said(report)}")
    if outcome.not_restored:
        content["not_restored"] = outcome.not_restored
    evidence_type = "rollback" if outcome.status == "rolled_back" else "deployment"
    ledger.finish_deployment(deployment_id, outcome.status, error=outcome.error)
    record_evidence(ledger, key, evidence_type, release, content, promotion_id=promotion_id)
    final = S.ROLLED_BACK if outcome.status == "rolled_back" else S.FAILED
    detail: dict[str, Any] = {"error": outcome.error}
    if outcome.not_restored:
        detail["not_restored"] = outcome.not_restored
    ledger.transition(promotion_id, final, actor="stella", detail=detail)
    ledger.release_deploy_lock(promo.app, env.name, promotion_id, scope=env.lock_scope, actor="stella")
    raise DeploymentFailed(f"deployment {deployment_id} {outcome.status}: {outcome.error}")


def _end_paused(ledger: DeployLedger, key: SigningKey, promo: Promotion, release: Release, deployment_id: str,
                outcome: DeploymentOutcome, content: dict[str, Any], *, pending: list[str]) -> None:
    """on_failure: pause. Finished batches keep the release; the rest is recorded for a human, who
    promotes again (finishes the rollout) or rolls back. The promotion ends `failed`, lock released."""
    env_name = promo.environment
    content.update({"status": "paused", "pending": pending, "not_restored": outcome.not_restored})
    ledger.finish_deployment(deployment_id, DeploymentStatus.FAILED, error=outcome.error)
    record_evidence(ledger, key, "deployment", release, content, promotion_id=promo.id)
    ledger.transition(promo.id, S.FAILED, actor="stella",
                      detail={"paused": True, "pending": pending, "error": outcome.error,
                              **({"not_restored": outcome.not_restored} if outcome.not_restored else {})})
    lock = next((lk for lk in ledger.locks_held_by(promo.id) if lk.environment == env_name), None)
    if lock is not None:
        ledger.release_deploy_lock(promo.app, env_name, promo.id,
                                   scope="environment" if lock.app == "*" else "app", actor="stella")
    raise DeploymentFailed(f"deployment {deployment_id} paused: {outcome.error}; left for a human: "
                           f"{', '.join(pending) or 'nothing'} (they run their previous release: promote again "
                           "to finish the rollout, or roll back)")


def _check_approved_plan(estate: Estate, ledger: DeployLedger, key: SigningKey, promo: Promotion, release: Release,
                         facts: dict[str, TargetFacts]) -> None:
    """Stop (nothing deployed) if what the deployment would change now is not what every counted
    approval approved: record why (audit + `deployment` evidence with both plans), end the
    promotion `failed` with reason `plan.changed`, release the lock, raise DeploymentFailed."""
    approved = approved_plans(ledger, promo.id)
    if not approved:  # nobody approved a plan (no approval needed, or given before ledger 0004)
        return
    plans = plan_deployment(estate, release, environment=promo.environment, promotion_id=promo.id,
                            deployment_id=PREVIEW_ID)
    live = plan_from_facts(plans, dict(facts), environment=promo.environment, release=release)
    differences: list[str] = []
    for approver, plan in approved:
        differences += [f"{d} (approved by {approver})" for d in plan_differences(plan, live)]
    if not differences:
        return
    env = estate.environment(promo.environment)
    message = (f"not deployed: what deploying {release.name} would change in {promo.environment} is no longer "
               f"what was approved: {'; '.join(differences)}. Nothing was changed. Request the promotion again "
               f"(DAG stella_promote__{promo.app}__{promo.environment}, release {release.name}); the approvers "
               "will see the new plan.")
    ledger.audit("stella", "deployment.plan_changed", f"promotion:{promo.id}",
                 {"approved": sorted({p.hash for _, p in approved}), "live": live.hash, "differences": differences})
    _end_not_started(ledger, key, promo, release, PLAN_CHANGED,
                     evidence={"approved_plans": [{"approver": a, "plan": p.to_dict()} for a, p in approved],
                               "live_plan": live.to_dict(), "differences": differences},
                     detail={"differences": differences, "live_plan_hash": live.hash, "message": message})
    ledger.release_deploy_lock(promo.app, env.name, promo.id, scope=env.lock_scope, actor="stella")
    raise DeploymentFailed(message)


def verify_promotion(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str,
                     targets: TargetFactory) -> dict[str, Any]:
    """Read facts on every target; all must run exactly the release digests. Then `deployed`, the old
    workloads are removed and the lock released; otherwise every target is rolled back."""
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    env = estate.environment(promo.environment)
    want = release.digests()
    result: dict[str, Any] = {"release_id": release.id, "release_name": release.name, "environment": env.name,
                              "content_hash": release.content_hash, "digests": want}
    if promo.status == S.DEPLOYED:  # a retry after the work was done
        return result
    if promo.status != S.VERIFYING:
        raise DeploymentFailed(f"promotion {promotion_id} is {promo.status}, not verifying; nothing to verify")
    claim = ledger.acquire_deploy_lock(promo.app, env.name, promotion_id, promotion_id, scope=env.lock_scope,
                                       lease_s=env.lock_lease_s, actor="stella")
    if not claim.acquired:  # the lease ran out and someone else deploys: our rollback would undo theirs
        assert claim.holder is not None  # a refused claim names the lock's holder
        raise DeploymentFailed(f"promotion {promotion_id} lost its deploy lock to promotion "
                               f"{claim.holder.promotion_id}; it will be rolled back by that promotion")
    running = [d for d in ledger.deployments_for(promotion_id) if d.status == DeploymentStatus.RUNNING]
    # Rolling + continue leaves skipped targets on their previous release; blue-green keeps the
    # previous set running for the switch-back window: neither must run the release.
    to_check, left_out = targets_to_verify(env, ledger, running[-1] if running else None)
    observed: dict[str, dict[str, str | None]] = {}
    problems: list[str] = []
    bound: list[tuple[Target, str]] = []
    for t in to_check:
        try:
            target = targets(t)
            facts = target.facts(release.app)
        except Exception as exc:  # noqa: BLE001 - cannot look: not verified
            problems.append(f"{t.name}: cannot read facts: {exc}")
            continue
        bound.append((target, t.name))
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
    if left_out:
        content["not_checked"] = left_out
    record_evidence(ledger, key, "deployment", release, content, promotion_id=promotion_id)
    if problems:
        report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                     reason="verification failed: " + "; ".join(problems))
        raise DeploymentFailed("verification failed: " + "; ".join(problems) + f"; {_said(report)}")
    if running:
        plans = {p.target: p for p in plan_deployment(estate, release, environment=env.name,
                                                      promotion_id=promotion_id, deployment_id=running[-1].id)}
        for problem in finalize_targets([(target, plans[name]) for target, name in bound]):
            ledger.audit("stella", "deployment.finalize_failed", f"deployment:{running[-1].id}", {"problem": problem})
        for dep in running:
            ledger.finish_deployment(dep.id, DeploymentStatus.SUCCEEDED)
    ledger.transition(promotion_id, S.DEPLOYED, actor="stella")
    ledger.release_deploy_lock(promo.app, env.name, promotion_id, scope=env.lock_scope, actor="stella")
    return result


def fail_for_lock(ledger: DeployLedger, key: SigningKey, promotion_id: str, *, reason: str, holder: str | None,
                  extra: dict[str, Any] | None = None) -> None:
    """The deploy lock stayed with another promotion (`lock.held`: refused at once; `lock.timeout`:
    waited too long): record an audit event and evidence, and end the promotion `failed`."""
    promo = ledger.get_promotion(promotion_id)
    release = ledger.get_release(promo.release_id)
    action = "lock.refused" if reason == "lock.held" else reason
    ledger.audit("stella", action, f"promotion:{promotion_id}",
                 {"app": promo.app, "environment": promo.environment, "holder": holder, **(extra or {})})
    _end_not_started(ledger, key, promo, release, reason, evidence={"lock_holder": holder},
                     detail={"holder": holder, **(extra or {})})


def _end_not_started(ledger: DeployLedger, key: SigningKey, promo: Promotion, release: Release, reason: str, *,
                     evidence: dict[str, Any], detail: dict[str, Any]) -> None:
    """Nothing was deployed (frozen, locked): seal a `deployment` record with status `not_started`
    and the reason, and end the promotion `failed` with the same reason."""
    record_evidence(ledger, key, "deployment", release, {
        "environment": promo.environment, "promotion_id": promo.id, "status": "not_started", "reason": reason,
        **evidence}, promotion_id=promo.id)
    ledger.transition(promo.id, S.FAILED, actor="stella", detail={"reason": reason, **detail})
