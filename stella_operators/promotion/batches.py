"""Batches 2..N of a rolling deployment, one call (one DAG task) per batch.

Batch 1 is `deploy_promotion(..., batch=0)`: it checks the freeze, takes the deploy lock, reads
every target's facts (the previous digests a rollback restores, for all batches) and runs its
batch. Each later batch:
- needs the promotion `deploying` and every earlier batch recorded; a batch already recorded is
  done (a retry after the work returns it);
- takes the same lock again (re-entrant for its promotion: the lease is renewed; a lock taken
  over by another promotion means ours was rolled back by it) and renews it while it works;
- waits `pause_s` first, then runs its targets; the start is recorded before any target changes;
- a batch whose start is recorded but whose results are not was interrupted (dead worker): its
  retry rolls the whole deployment back -- never a half-done batch resumed from unknown state;
- a failure: `rollback` restores every batch (promotion/recovery.py, from the ledger), `pause` ends
  the promotion with what is left, `continue` skips the failed targets and the next batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome, TargetStatus
from stella_operators.deploy.planner import plan_deployment
from stella_operators.ledger.records import DeploymentStatus
from stella_operators.promotion.lease import LeaseKeeper
from stella_operators.promotion.recovery import roll_back_promotion
from stella_operators.promotion.service import (
    DeploymentFailed,
    TargetFactory,
    _recorded_outcome,
    _said,
    settle_outcome,
)
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.promotion.strategies import (
    batch_started,
    policy_of,
    results_by_target,
    run_strategy,
)

if TYPE_CHECKING:
    from stella_operators.estate.models import Environment, Estate
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import DeployLedger
    from stella_operators.ledger.records import Deployment
    from stella_operators.promotion.model import Promotion


def deploy_batch(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, targets: TargetFactory,
                 batch: int, *, holder: str = "", sleep: Callable[[float], None] = time.sleep) -> DeploymentOutcome:
    """Run batch `batch` (0-based, >= 1) of the promotion's rolling deployment (module docstring)."""
    if batch < 1:
        raise ValueError("batch 0 is deploy_promotion(..., batch=0)")
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    policy = policy_of(env)
    if env.strategy != "rolling" or batch >= len(policy.batches):
        raise DeploymentFailed(f"environment {env.name} has no batch {batch + 1} (strategy {env.strategy}, "
                               f"{len(policy.batches)} batch(es)); re-render the DAGs after changing the estate")
    dep = running_deployment(ledger, promo, env, holder, f"batch {batch + 1}")
    if dep is None:
        return _recorded_outcome(ledger, promotion_id)
    done = results_by_target(dep)
    mine = list(policy.batches[batch])
    if all(n in done for n in mine):  # a retry after the batch was recorded
        return DeploymentOutcome(status="deployed", deployment_id=dep.id,
                                 targets=[TargetOutcome(n, status=_as_status(done[n])) for n in mine])
    earlier = [n for b in policy.batches[:batch] for n in b]
    missing = [n for n in earlier if n not in done]
    if missing or batch_started(ledger, dep.id, batch):
        why = (f"batch {batch + 1} was interrupted (its worker died); retried" if not missing else
               f"batch {batch + 1} started before {', '.join(missing)} of an earlier batch was recorded")
        report = roll_back_promotion(estate, ledger, key, promotion_id, targets, reason=why)
        raise DeploymentFailed(f"promotion {promotion_id}: {why}; {_said(report)}")
    release = ledger.get_release(promo.release_id)
    unavailable = [n for n in earlier if done.get(n) == "failed"]
    with LeaseKeeper(ledger, promo.app, env.name, promotion_id, scope=env.lock_scope, lease_s=env.lock_lease_s):
        try:
            if policy.pause_s > 0:
                sleep(policy.pause_s)
            plans = {p.target: p for p in plan_deployment(estate, release, environment=env.name,
                                                          promotion_id=promotion_id, deployment_id=dep.id)}
            pairs = []
            for config in env.targets:
                if config.name in mine:
                    target = targets(config)
                    pairs.append((target, plans[config.name]))
            outcome = run_strategy(env, ledger, dep.id, pairs, batch=batch, unavailable=unavailable)
        except BaseException as exc:  # interrupted (time-out, kill), or a host we could not even reach
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                         reason=f"batch {batch + 1} was interrupted ({what})")
            if isinstance(exc, Exception):
                raise DeploymentFailed(f"batch {batch + 1}: {what}; {_said(report)}") from exc
            raise
        return settle_outcome(estate, ledger, key, promo, release, dep.id, outcome, targets, batch=batch,
                              previous_release=ledger.deployed_release(promo.app, env.name),
                              earlier_batches_changed=True)


def _as_status(status: str) -> TargetStatus:
    allowed = ("deployed", "unchanged", "rolled_back", "failed", "cancelled", "skipped", "pending")
    return status if status in allowed else "failed"  # type: ignore[return-value]


def running_deployment(ledger: DeployLedger, promo: Promotion, env: Environment, holder: str,
                       what: str) -> Deployment | None:
    """The promotion's running deployment, for a later part of it (`what`: "batch 2", "stage 3")
    run by its own task: the deploy lock is claimed again (a task that lost it must not go on).
    None when the promotion is already past deploying (a retry: the caller returns what was
    recorded); DeploymentFailed when it is in no state to go on."""
    if promo.status in (S.VERIFYING, S.DEPLOYED):
        return None
    if promo.status != S.DEPLOYING:
        raise DeploymentFailed(f"promotion {promo.id} is {promo.status}; {what} has nothing to do")
    claim = ledger.acquire_deploy_lock(promo.app, env.name, promo.id, holder or promo.id,
                                       scope=env.lock_scope, lease_s=env.lock_lease_s, actor="stella")
    if not claim.acquired:
        assert claim.holder is not None  # a refused claim names the lock's holder
        raise DeploymentFailed(f"promotion {promo.id} lost its deploy lock to promotion "
                               f"{claim.holder.promotion_id}, which rolls this deployment back")
    running = [d for d in ledger.deployments_for(promo.id) if d.status == DeploymentStatus.RUNNING]
    if not running:
        raise DeploymentFailed(f"promotion {promo.id} has no running deployment for {what}")
    return running[-1]
