"""Roll back a promotion whose deployment started but was never verified: after a failed
verification, a worker that died mid-deployment (found by its own retry or by the promotion that
takes over its stale lock), an interrupted task (time-out, kill) or an abort.

Works from the ledger (the running deployment and the digests each target ran before it) and the
targets' own state, never from the memory of the process that started the deployment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stella_operators.deploy.blue_green import switch_back
from stella_operators.deploy.canary import abort_traffic
from stella_operators.deploy.planner import plan_deployment
from stella_operators.deploy.rollback import RestoreResult, restore_targets
from stella_operators.estate.models import Environment, Estate
from stella_operators.evidence.recorder import record_evidence
from stella_operators.ledger.records import DeploymentStatus
from stella_operators.promotion import strategies
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.routing.contract import RouterError

if TYPE_CHECKING:
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import DeployLedger
    from stella_operators.promotion.service import TargetFactory
    from stella_operators.targets.contract import Target, TargetPlan

log = logging.getLogger(__name__)
ROLLBACK_STATUSES = (S.DEPLOYING, S.VERIFYING)


@dataclass
class RollbackReport:
    promotion_id: str
    status: str                                   # rolled_back | failed
    reason: str
    not_restored: list[str] = field(default_factory=list)
    results: list[RestoreResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == S.ROLLED_BACK


def target_address(target: Target) -> str:
    """`name (address)` for messages: which host, and where it is reached."""
    address = getattr(target, "address", None)
    return f"{target.name} ({address})" if address else target.name


def roll_back_promotion(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str,
                        targets: TargetFactory, *, reason: str,
                        actor: str = "stella", max_parallel: int | None = None) -> RollbackReport:
    """Restore every target of the promotion's unfinished deployments to the digests it ran before;
    record a `rollback` evidence record; end the promotion `rolled_back`, or `failed` naming the hosts
    that could not be restored; release its deploy locks. Idempotent: a finished promotion is left as is."""
    promo = ledger.get_promotion(promotion_id)
    if promo.status not in ROLLBACK_STATUSES:
        return RollbackReport(promotion_id, str(promo.status), f"already {promo.status}")
    env = estate.environment(promo.environment)
    release = ledger.get_release(promo.release_id)
    running = [d for d in ledger.deployments_for(promotion_id) if d.status == DeploymentStatus.RUNNING]
    results: list[RestoreResult] = []
    for dep in running:
        results += _send_traffic_back(env, ledger, dep.id)
        plans = plan_deployment(estate, release, environment=env.name, promotion_id=promotion_id,
                                deployment_id=dep.id)
        items: list[tuple[Target, TargetPlan, dict[str, str | None]]] = []
        for config, plan in zip(env.targets, plans, strict=True):
            try:
                target = targets(config)
            except Exception as exc:  # noqa: BLE001 - cannot even reach it: not restored, named
                results.append(RestoreResult(config.name, f"{config.name}: cannot connect: {exc}"))
                continue
            items.append((target, plan, dict(dep.previous.get(config.name, {}))))
        # A/B: the targets that ran the app before come back first, then the others stop (capacity).
        waves = ([[i for i in items if any(i[2].values())], [i for i in items if not any(i[2].values())]]
                 if env.strategy == "ab" else [items])
        for wave in waves:
            results += restore_targets(wave, max_parallel=max_parallel or env.max_parallel,
                                       timeout_s=env.deploy_timeout_s)
        by_name = {r.target: r for r in results}
        not_restored_here = [t.name for t in env.targets if t.name in by_name and not by_name[t.name].ok]
        for t in env.targets:
            r = by_name.get(t.name)
            if r is not None:
                ledger.add_target_result(dep.id, t.name, "rolled_back" if r.ok else "failed",
                                         digests=r.digests_after or {}, log=r.error or "restored", sticker=None)
        ledger.finish_deployment(dep.id, DeploymentStatus.FAILED if not_restored_here else DeploymentStatus.ROLLED_BACK,
                                 error=reason)
    not_restored = sorted({r.target for r in results if not r.ok})
    status = S.FAILED if not_restored else S.ROLLED_BACK
    content = {
        "environment": env.name, "promotion_id": promotion_id, "reason": reason, "status": str(status),
        "deployments": [d.id for d in running],
        "targets": [{"target": r.target, "restored": r.ok, "after": r.digests_after, "error": r.error}
                    for r in results],
        "not_restored": not_restored,
    }
    record_evidence(ledger, key, "rollback", release, content, promotion_id=promotion_id)
    detail: dict[str, Any] = {"reason": reason}
    if not_restored:
        detail["not_restored"] = not_restored
        detail["errors"] = [r.error for r in results if r.error]
    ledger.transition(promotion_id, status, actor=actor, detail=detail)
    for lock in ledger.locks_held_by(promotion_id):
        ledger.release_deploy_lock(promo.app, lock.environment, promotion_id,
                                   scope="environment" if lock.app == "*" else "app", actor=actor)
    log.warning("promotion %s %s: %s%s", promotion_id, status, reason,
                f" (not restored: {', '.join(not_restored)})" if not_restored else "")
    return RollbackReport(promotion_id, str(status), reason, not_restored, results)


def _send_traffic_back(env: Environment, ledger: DeployLedger, deployment_id: str) -> list[RestoreResult]:
    """Blue-green and canary: if the deployment had moved traffic (its switch is recorded before
    traffic moves), send it back to the previous set -- still running, kept for this -- before the new set
    is restored. Without a previous set, the new set only leaves service."""
    if env.strategy not in ("blue_green", "canary"):
        return []
    if env.canary is not None and env.canary.group_names() is None:
        return []  # router none: restoring the targets is what takes the release out of service
    switch = strategies.switch_of(ledger, deployment_id)
    if switch is None:
        return []
    router = strategies.router_of(env)
    try:
        if env.strategy == "canary":  # 0 % on the new version, whatever step it had reached
            dist = abort_traffic(router, strategies.route_of(env), switch["group"], switch.get("previous_group"))
            log.warning("deployment %s: traffic sent back to %s: %s", deployment_id,
                        switch.get("previous_group") or "no group", dist)
        elif switch.get("previous_group"):
            dist = switch_back(router, strategies.route_of(env), switch["previous_group"])
            log.warning("deployment %s: traffic sent back to %s: %s", deployment_id, switch["previous_group"], dist)
        else:
            router.configure(strategies.route_of(env))
            router.disable(switch["group"])
    except RouterError as exc:
        return [RestoreResult(router.name, f"{router.name}: could not send the traffic back: {exc}")]
    return []
