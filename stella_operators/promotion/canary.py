"""Canary steps of a promotion, one call per DAG task, and the decision after each step.

The `deploy` task runs `deploy_promotion` (promotion/service.py): the release goes to the idle
group, which enters service with 0 % of the traffic; the promotion stays `deploying` with the
deploy lock held. Then, per step k (one task each):
- `take_step`: the step's start is written (`deployment.canary_step`, audit) BEFORE its weight is
  set, so a rollback after a dead worker knows a step may have moved traffic; then the weight,
  read back from the router. Router `none`: the step's share of the targets gets the release.
  A router that refuses or reports another split stops the canary (`abort`).
- the task bakes and analyses (Airflow layer, deferred), then `decide`: a signed `canary`
  evidence record (weight, distribution read back, analysis report, decision, who decided, why);
  `advance` at the last step (100 %) records the switch again (the switch-back window starts) and
  moves the promotion to `verifying`; `rollback` calls `abort`; `hold` stays at the weight.
- `abort`: traffic back to 100 % on the previous group first, then every target of the deployment
  back to its previous digests (promotion/recovery.py), the reason recorded.
The lock's lease is taken for the whole bake + analysis (+ the human's time) at each step: nothing
renews it while the task waits deferred. Plain Python.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from stella_operators.deploy.canary import CanaryError, none_route, shift_to, targets_at
from stella_operators.deploy.engine import run_deployment
from stella_operators.deploy.planner import plan_deployment
from stella_operators.estate.models import Environment
from stella_operators.estate.strategy_settings import CanarySettings
from stella_operators.evidence.recorder import record_evidence
from stella_operators.ledger.records import DeploymentStatus
from stella_operators.promotion import strategies
from stella_operators.promotion.recovery import RollbackReport, roll_back_promotion
from stella_operators.promotion.service import DeploymentFailed, TargetFactory
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.routing.contract import RouterError

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import DeployLedger
    from stella_operators.ledger.records import Deployment

log = logging.getLogger(__name__)
STEP = "deployment.canary_step"
ANALYSIS = "deployment.canary_analysis"
DECISION = "deployment.canary_decision"
SPLIT = "deployment.canary_split"        # the split read back from the router when a step was set
ASKED = "deployment.canary_asked"        # the step task parked asking a human (Airflow HITL)
DECISIONS = ("advance", "hold", "rollback")


class CanaryStopped(RuntimeError):
    """The canary was rolled back (traffic at 0 % on the new version, previous digests restored)."""


@dataclass
class StepReport:
    step: int                    # 1-based
    of: int
    weight: int                  # configured share of the new version, percent
    group: str                   # the group running the new version (router none: `release`)
    previous_group: str | None
    distribution: dict[str, int] = field(default_factory=dict)   # read back from the router
    deployment_id: str = ""
    done: bool = False           # the promotion was already past this step (a retry)

    @property
    def last(self) -> bool:
        return self.step == self.of

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "last": self.last}


def settings_of(env: Environment) -> CanarySettings:
    if env.canary is None:
        raise DeploymentFailed(f"environment {env.name} is not a canary environment (strategy {env.strategy}); "
                               "re-render the DAGs after changing the estate")
    return env.canary


def step_lease_s(env: Environment) -> float:
    """Lease of the deploy lock taken at each step: the lock is not renewed while the task waits
    deferred, so it must outlive the bake, the analysis and a human's answer."""
    cs = settings_of(env)
    longest = 0.0
    for m in (cs.analysis or {}).get("metrics", []):
        longest = max(longest, m.get("initial_delay_s", 0) + m.get("interval_s", 30) * (
            m.get("count", 1) + m.get("consecutive_error_limit", 4) + m.get("inconclusive_limit", 0)))
    ask = cs.ask_timeout_s if cs.on_inconclusive == "ask" and cs.analysis else 0
    return env.lock_lease_s + cs.bake_s + longest * 2 + ask


def _running(ledger: DeployLedger, promotion_id: str) -> Deployment:
    running = [d for d in ledger.deployments_for(promotion_id) if d.status == DeploymentStatus.RUNNING]
    if not running:
        raise DeploymentFailed(f"promotion {promotion_id} has no running deployment")
    return running[-1]


def take_step(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, step: int,
              targets: TargetFactory, *, holder: str = "") -> StepReport:
    """Set step `step` (0-based)'s weight and read it back (module docstring)."""
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    plan = settings_of(env).plan()
    if not 0 <= step < len(plan):
        raise DeploymentFailed(f"environment {env.name} has no canary step {step + 1} (steps {list(plan)}); "
                               "re-render the DAGs after changing the estate")
    weight = plan[step]
    if promo.status in (S.VERIFYING, S.DEPLOYED):  # a retry after the canary finished
        return StepReport(step + 1, len(plan), weight, "", None, done=True)
    if promo.status != S.DEPLOYING:
        raise DeploymentFailed(f"promotion {promotion_id} is {promo.status}; canary step {step + 1} has nothing to do")
    claim = ledger.acquire_deploy_lock(promo.app, env.name, promotion_id, holder or promotion_id,
                                       scope=env.lock_scope, lease_s=step_lease_s(env), actor="stella")
    if not claim.acquired:
        assert claim.holder is not None  # a refused claim names the lock's holder
        raise DeploymentFailed(f"promotion {promotion_id} lost its deploy lock to promotion "
                               f"{claim.holder.promotion_id}, which rolls this deployment back")
    dep = _running(ledger, promotion_id)
    switch = strategies.switch_of(ledger, dep.id)
    group = str(switch["group"]) if switch else "release"
    previous = switch.get("previous_group") if switch else None
    ledger.audit("stella", STEP, strategies.subject(dep.id), {"step": step + 1, "weight": weight, "group": group})
    log.info("canary step %d of %d: %d %% of new requests to %s", step + 1, len(plan), weight, group)
    try:
        if settings_of(env).group_names() is None:
            dist = _deploy_share(estate, ledger, promotion_id, dep, weight, targets)
            previous = "previous"
        else:
            dist = shift_to(strategies.router_of(env), strategies.route_of(env), group, weight, previous)
    except (RouterError, CanaryError, DeploymentFailed) as exc:
        report = abort(estate, ledger, key, promotion_id, targets, reason=f"canary step {step + 1} ({weight} %): {exc}")
        raise CanaryStopped(f"canary step {step + 1} ({weight} %) could not be set: {exc}; {_said(report)}") from exc
    ledger.audit("stella", SPLIT, strategies.subject(dep.id),
                 {"step": step + 1, "weight": weight, "distribution": dist})
    log.info("canary step %d: the router reports %s", step + 1, dist)
    return StepReport(step + 1, len(plan), weight, group, previous, dist, dep.id)


def current_step(estate: Estate, ledger: DeployLedger, promotion_id: str, step: int) -> StepReport:
    """Step `step` (0-based) as it stands: its weight as recorded when it was taken, the split read
    from the router now. What a resumed task works from (it keeps nothing in memory across waits)."""
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    plan = settings_of(env).plan()
    dep = _running(ledger, promotion_id)
    taken = [e for e in ledger.audit_events(strategies.subject(dep.id))
             if e.action == STEP and e.detail.get("step") == step + 1]
    if not taken:
        raise DeploymentFailed(f"promotion {promotion_id}: canary step {step + 1} was never taken")
    detail = taken[-1].detail
    switch = strategies.switch_of(ledger, dep.id)
    if settings_of(env).group_names() is None:
        names = [t.name for t in env.targets]
        router = strategies.router_of(env)
        router.configure(none_route(names, [t.target for t in dep.targets if t.status in ("deployed", "unchanged")]))
        return StepReport(step + 1, len(plan), int(detail["weight"]), "release", "previous", router.distribution(),
                          dep.id)
    router = strategies.router_of(env)
    router.configure(strategies.route_of(env))
    return StepReport(step + 1, len(plan), int(detail["weight"]), str(detail["group"]),
                      switch.get("previous_group") if switch else None, router.distribution(), dep.id)


def query_values(estate: Estate, ledger: DeployLedger, promotion_id: str, step: StepReport) -> dict[str, str]:
    """The values of the analysis queries' variables (analysis/model.py) at this step."""
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    if settings_of(env).group_names() is None:   # router none: the targets updated so far
        dep = _running(ledger, promotion_id)
        new = [t.target for t in dep.targets if t.status in ("deployed", "unchanged")]
        old = [t.name for t in env.targets if t.name not in new]
    else:
        new = [t.name for t in env.targets if t.group == step.group]
        old = [t.name for t in env.targets if step.previous_group is not None and t.group == step.previous_group]
    return {"group": step.group, "previous_group": step.previous_group or "", "targets": "|".join(new),
            "previous_targets": "|".join(old), "release": ledger.get_release(promo.release_id).name}


def record_analysis(ledger: DeployLedger, step: StepReport, report: dict[str, Any]) -> None:
    """The step's analysis report, kept for the decision that may come later (a human's)."""
    ledger.audit("stella", ANALYSIS, strategies.subject(step.deployment_id), {"step": step.step, "report": report})


def record_ask(ledger: DeployLedger, step: StepReport, timeout_s: float) -> None:
    """The step task now waits for a human's answer (no answer within `timeout_s` rolls back)."""
    ledger.audit("stella", ASKED, strategies.subject(step.deployment_id),
                 {"step": step.step, "weight": step.weight, "timeout_s": timeout_s})


def last_analysis(ledger: DeployLedger, step: StepReport) -> dict[str, Any] | None:
    for e in reversed(ledger.audit_events(strategies.subject(step.deployment_id))):
        if e.action == ANALYSIS and e.detail.get("step") == step.step:
            report: dict[str, Any] = e.detail["report"]
            return report
    return None


def _deploy_share(estate: Estate, ledger: DeployLedger, promotion_id: str, dep: Deployment, weight: int,
                  targets: TargetFactory) -> dict[str, int]:
    """Router none: the first ceil(weight x N / 100) targets run the release (all or nothing for
    the ones this step adds); returns the share of targets per group."""
    promo = ledger.get_promotion(promotion_id)
    env = estate.environment(promo.environment)
    names = [t.name for t in env.targets]
    want = targets_at(names, weight)
    done = {t.target for t in dep.targets if t.status in ("deployed", "unchanged")}
    release = ledger.get_release(promo.release_id)
    plans = {p.target: p for p in plan_deployment(estate, release, environment=env.name,
                                                  promotion_id=promotion_id, deployment_id=dep.id)}
    todo = [c for c in env.targets if c.name in want and c.name not in done]
    if todo:
        outcome = run_deployment([(targets(c), plans[c.name]) for c in todo], max_parallel=env.max_parallel,
                                 timeout_s=env.deploy_timeout_s, finalize=False)
        for t in outcome.targets:
            ledger.add_target_result(dep.id, t.target, t.status, digests=t.digests_after, timings=t.timings_ms,
                                     log="\n".join(t.log), sticker=None)
        if not outcome.ok:
            raise DeploymentFailed(f"deploying {', '.join(c.name for c in todo)} failed: {outcome.error}")
    router = strategies.router_of(env)
    router.configure(none_route(names, want))
    router.shift("release", weight)
    return router.distribution()


def decide(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, step: StepReport,
           targets: TargetFactory, *, decision: str, decided_by: str, reason: str = "",
           analysis: dict[str, Any] | None = None) -> str:
    """Seal the step's evidence and act on `decision` (advance | hold | rollback); returns the
    promotion's status afterwards. `analysis` is the analysis report (None: no analysis configured)."""
    if decision not in DECISIONS:
        raise ValueError(f"a canary decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    promo = ledger.get_promotion(promotion_id)
    if promo.status != S.DEPLOYING:
        return str(promo.status)
    env = estate.environment(promo.environment)
    release = ledger.get_release(promo.release_id)
    content = {"environment": env.name, "promotion_id": promotion_id, "deployment_id": step.deployment_id,
               "step": step.step, "of": step.of, "weight": step.weight, "group": step.group,
               "previous_group": step.previous_group, "distribution": step.distribution,
               "analysis": analysis, "decision": decision, "decided_by": decided_by, "reason": reason}
    record_evidence(ledger, key, "canary", release, content, promotion_id=promotion_id)
    ledger.audit(decided_by, DECISION, strategies.subject(step.deployment_id),
                 {"step": step.step, "weight": step.weight, "decision": decision, "reason": reason})
    log.info("canary step %d (%d %%): %s by %s%s", step.step, step.weight, decision, decided_by,
             f" ({reason})" if reason else "")
    if decision == "rollback":
        report = abort(estate, ledger, key, promotion_id, targets,
                       reason=f"canary step {step.step} ({step.weight} %): {reason or 'rolled back'} "
                              f"(decided by {decided_by})", actor=decided_by)
        return report.status
    if decision == "hold":  # another bake + analysis (+ answer) under the lock: its lease again
        ledger.acquire_deploy_lock(promo.app, env.name, promotion_id, promotion_id, scope=env.lock_scope,
                                   lease_s=step_lease_s(env), actor="stella")
        return str(S.DEPLOYING)
    if decision == "advance" and step.last:
        if step.previous_group is not None and step.group != "release":
            strategies.mark_switch(ledger, step.deployment_id, step.group, step.previous_group)
        ledger.transition(promotion_id, S.VERIFYING, actor="stella")
        return str(S.VERIFYING)
    return str(S.DEPLOYING)


def abort(estate: Estate, ledger: DeployLedger, key: SigningKey, promotion_id: str, targets: TargetFactory, *,
          reason: str, actor: str = "stella") -> RollbackReport:
    """Traffic back to the previous group first (0 % on the new version), then the previous digests
    on every target the deployment changed; the promotion ends `rolled_back` (or `failed`, naming
    what could not be restored)."""
    return roll_back_promotion(estate, ledger, key, promotion_id, targets, reason=reason, actor=actor)


def _said(report: RollbackReport) -> str:
    if report.ok:
        return "traffic is back on the previous version and every host runs what it ran before"
    return f"rollback incomplete, not restored: {', '.join(report.not_restored) or report.reason}"
