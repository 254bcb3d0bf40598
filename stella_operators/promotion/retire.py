"""Blue-green and canary: remove the previous set once the switch-back window of a verified
promotion ends.

The window starts at the recorded switch (`deployment.switch`, promotion/strategies.py; a canary
records it again when it reaches 100 %) and lasts `blue_green.switch_back_s` (`canary.switch_back_s`).
Until then the previous set keeps running: `switch_back` (or a rollback) sends the traffic back to
it at once. After it, the set leaves the router (maintenance) and its
workloads are removed -- only if the promotion ended `deployed`, no deployment holds the lock of
the app now, the set still gets no traffic and each of its targets still runs the digests it ran
at the switch; anything else is left alone and said so (`deployment.retired` audit event).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from stella_operators.deploy.blue_green import RetireResult, retire_previous
from stella_operators.deploy.planner import plan_deployment
from stella_operators.promotion import strategies
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.ledger.protocols import DeployLedger
    from stella_operators.ledger.records import Deployment
    from stella_operators.promotion.service import TargetFactory


def _switched(ledger: DeployLedger, promotion_id: str) -> tuple[Deployment, dict[str, object]] | None:
    for dep in reversed(ledger.deployments_for(promotion_id)):
        switch = strategies.switch_of(ledger, dep.id)
        if switch is not None:
            return dep, switch
    return None


def retire_due_at(estate: Estate, ledger: DeployLedger, promotion_id: str) -> datetime | None:
    """When the previous set may go (None: nothing to retire)."""
    promo = ledger.get_promotion(promotion_id)
    found = _switched(ledger, promotion_id)
    window = _switch_back_s(estate, promo.environment)
    if window is None or found is None or not found[1].get("previous_group"):
        return None
    at = found[1]["at"]
    assert isinstance(at, datetime)
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at + timedelta(seconds=window)


def _switch_back_s(estate: Estate, environment: str) -> float | None:
    """The switch-back window of a blue-green or canary environment (None: no previous set to keep)."""
    env = estate.environment(environment)
    if env.blue_green is not None:
        return env.blue_green.switch_back_s
    if env.canary is not None and env.canary.group_names() is not None:
        return env.canary.switch_back_s
    return None


def retire_previous_set(estate: Estate, ledger: DeployLedger, promotion_id: str,
                        targets: TargetFactory) -> RetireResult:
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    found = _switched(ledger, promotion_id)
    if _switch_back_s(estate, env.name) is None or found is None or not found[1].get("previous_group"):
        return RetireResult("", skipped={"*": "no previous set to retire"})
    dep, switch = found
    group = str(switch["previous_group"])
    names = [t.name for t in strategies.group_targets(env, group)]
    lock = ledger.deploy_lock(promo.app, env.name, scope=env.lock_scope)
    why = None
    if promo.status != S.DEPLOYED:
        why = f"promotion {promotion_id} is {promo.status}: the previous set is what serves"
    elif lock is not None and not ledger.deploy_lock_is_stale(lock):
        why = f"promotion {lock.promotion_id} is deploying here now; it replaces the idle set itself"
    if why is not None:
        result = RetireResult(group, skipped=dict.fromkeys(names, why))
    else:
        release = ledger.get_release(promo.release_id)
        plans = {p.target: p for p in plan_deployment(estate, release, environment=env.name,
                                                      promotion_id=promotion_id, deployment_id=dep.id)}
        pairs = [(targets(t), plans[t.name]) for t in strategies.group_targets(env, group)]
        expected = {n: {c: d for c, d in dep.previous.get(n, {}).items() if d} for n in names}
        result = retire_previous(pairs, strategies.router_of(env), strategies.route_of(env), group, expected)
    ledger.audit("stella", strategies.RETIRED, strategies.subject(dep.id),
                 {"group": group, "removed": result.removed, "skipped": result.skipped, "errors": result.errors})
    return result
