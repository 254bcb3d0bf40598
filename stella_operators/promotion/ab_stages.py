"""Stages 2..N of an A/B deployment (`strategy: ab`), one call (one DAG task) per stage.

Stage 1 is `deploy_promotion(..., batch=0)`: it checks the freeze, takes the deploy lock, records
what every target runs (what a rollback restores), decides which group is A and runs its stage.
Each later stage:
- needs the promotion `deploying` and every earlier stage ended; a stage already ended is done
  (a retry after the work returns it);
- takes the same lock again (re-entrant for its promotion) and renews its lease while it works
  (the stage's wait included);
- a stage whose start is recorded but whose end is not was interrupted (dead worker): its retry
  rolls the whole deployment back -- never a half-done stage resumed from unknown state;
- a failure: the stage has already brought A back and taken B down (deploy/ab.py); the promotion
  is then rolled back from the ledger too (promotion/recovery.py: it proves every target runs
  what it ran before, records a `rollback` evidence record and ends the promotion `rolled_back`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stella_operators.deploy.ab import AbOutcome
from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome
from stella_operators.deploy.planner import plan_deployment
from stella_operators.promotion import ab
from stella_operators.promotion.batches import running_deployment
from stella_operators.promotion.lease import LeaseKeeper
from stella_operators.promotion.recovery import roll_back_promotion
from stella_operators.promotion.service import DeploymentFailed, TargetFactory, _recorded_outcome, _said, settle_outcome

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import DeployLedger


def deploy_stage(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, targets: TargetFactory,
                 stage: int, *, holder: str = "", poll_s: float = 1.0) -> DeploymentOutcome:
    """Run stage `stage` (0-based, >= 1) of the promotion's A/B deployment (module docstring)."""
    if stage < 1:
        raise ValueError("stage 0 is deploy_promotion(..., batch=0)")
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    if env.strategy != "ab" or stage >= ab.stage_count(env):
        raise DeploymentFailed(f"environment {env.name} has no A/B stage {stage + 1} (strategy {env.strategy}); "
                               "re-render the DAGs after changing the estate")
    dep = running_deployment(ledger, promo, env, holder, f"stage {stage + 1}")
    if dep is None:
        return _recorded_outcome(ledger, promotion_id)
    ended = ab.stages_ended(ledger, dep.id)
    if stage in ended:  # a retry after the stage completed
        return DeploymentOutcome(status="deployed", deployment_id=dep.id,
                                 targets=[TargetOutcome(t.target, status="unchanged") for t in dep.targets])
    missing = [k + 1 for k in range(stage) if k not in ended]
    if missing or stage in ab.stages_started(ledger, dep.id):
        why = (f"stage {stage + 1} was interrupted (its worker died); retried" if not missing else
               f"stage {stage + 1} started before stage(s) {', '.join(map(str, missing))} ended")
        report = roll_back_promotion(estate, ledger, key, promotion_id, targets, reason=why)
        raise DeploymentFailed(f"promotion {promotion_id}: {why}; {_said(report)}")
    release = ledger.get_release(promo.release_id)
    with LeaseKeeper(ledger, promo.app, env.name, promotion_id, scope=env.lock_scope, lease_s=env.lock_lease_s):
        try:
            plans = {p.target: p for p in plan_deployment(estate, release, environment=env.name,
                                                          promotion_id=promotion_id, deployment_id=dep.id)}
            pairs = [(targets(config), plans[config.name]) for config in env.targets]
            outcome = ab.run_ab_strategy(env, ledger, dep.id, pairs, stage=stage, previous=dep.previous,
                                         poll_s=poll_s)
        except BaseException as exc:  # interrupted (time-out, kill), or a host we could not even reach
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                         reason=f"stage {stage + 1} was interrupted ({what})")
            if isinstance(exc, Exception):
                raise DeploymentFailed(f"stage {stage + 1}: {what}; {_said(report)}") from exc
            raise
        if not outcome.ok:
            _fail(estate, ledger, key, promotion_id, targets, dep.id, stage, outcome)
        return settle_outcome(estate, ledger, key, promo, release, dep.id, outcome, targets, batch=stage,
                              previous_release=ledger.deployed_release(promo.app, env.name))


def _fail(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, targets: TargetFactory,
          deployment_id: str, stage: int, outcome: AbOutcome | DeploymentOutcome) -> None:
    """Record the stage's target results and why it failed, then roll the promotion back from the
    ledger (idempotent on targets the stage already restored) and raise DeploymentFailed."""
    for t in outcome.targets:
        ledger.add_target_result(deployment_id, t.target, t.status, digests=t.digests_after, timings=t.timings_ms,
                                 log="\n".join(t.log), sticker=None)
    report = roll_back_promotion(estate, ledger, key, promotion_id, targets,
                                 reason=f"A/B stage {stage + 1} failed: {outcome.error}")
    raise DeploymentFailed(f"deployment {deployment_id}: A/B stage {stage + 1} failed: {outcome.error}; "
                           f"{_said(report)}")
