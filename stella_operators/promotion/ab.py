"""How a promotion runs `strategy: ab` (deploy/ab.py), and what the ledger keeps of it.

- Stage k is run by one call (one DAG task per stage). Before it touches a target, the audit event
  `deployment.stage_started` (subject `deployment:ID`, detail: stage, share, the targets it starts
  and stops, and which group is A and B) is written; `deployment.stage_ended` when it completed.
  A stage task that finds its start but not its end was interrupted (the worker died): it is
  never resumed half way, the deployment is rolled back (promotion/recovery.py restores every
  target to the digests the ledger says it ran before: A's parked workloads start again, B's go).
- Which group is A is decided once, by stage 1, from what each target ran before the deployment,
  and read back from stage 1's start event by the later stages (mid-rollout both groups run the app).
Plain Python.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stella_operators.deploy.ab import AbOutcome, AbStageReport, run_ab
from stella_operators.deploy.ab_plan import AbPlan, AbStage, choose_groups, plan_ab
from stella_operators.estate.models import Environment
from stella_operators.targets.contract import Parkable, Target, TargetPlan

if TYPE_CHECKING:
    from stella_operators.ledger.protocols import AuditLog

log = logging.getLogger(__name__)

STAGE_STARTED = "deployment.stage_started"
STAGE_ENDED = "deployment.stage_ended"
STAGE_FAILED = "deployment.stage_failed"


class AbRefused(RuntimeError):
    """The A/B deployment cannot start; nothing was changed."""


def _subject(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


def stage_count(env: Environment) -> int:
    return len(env.ab.stages) if env.ab is not None else 1


def plan_for(env: Environment, group_a: str | None, group_b: str) -> AbPlan:
    ab = env.ab
    if ab is None:
        raise ValueError(f"environment {env.name} is not strategy: ab")
    members = {g: [t.name for t in env.targets if t.group == g] for g in ab.groups}
    return plan_ab(members[group_a] if group_a else [], members[group_b], ab.stages, ab.thresholds(),
                   group_a=group_a, group_b=group_b, wait_s=ab.stage_wait_s)


def plan_from_previous(env: Environment, previous: Mapping[str, Mapping[str, str | None]]) -> AbPlan:
    """Stage 1: group A is the one whose targets ran the app before the deployment."""
    assert env.ab is not None
    running = {g: [t.name for t in env.targets if t.group == g and any(previous.get(t.name, {}).values())]
               for g in env.ab.groups}
    try:
        group_a, group_b = choose_groups(env.ab.groups, running)
    except ValueError as exc:
        raise AbRefused(f"environment {env.name}: {exc}") from None
    return plan_for(env, group_a, group_b)


def _events(ledger: AuditLog, deployment_id: str, action: str) -> dict[int, dict[str, Any]]:
    return {int(e.detail["stage"]): dict(e.detail) for e in ledger.audit_events(_subject(deployment_id))
            if e.action == action and "stage" in e.detail}


def stages_started(ledger: AuditLog, deployment_id: str) -> dict[int, dict[str, Any]]:
    return _events(ledger, deployment_id, STAGE_STARTED)


def stages_ended(ledger: AuditLog, deployment_id: str) -> dict[int, dict[str, Any]]:
    return _events(ledger, deployment_id, STAGE_ENDED)


def recorded_plan(env: Environment, ledger: AuditLog, deployment_id: str) -> AbPlan | None:
    """The plan stage 1 recorded (None: stage 1 never started)."""
    first = stages_started(ledger, deployment_id).get(0)
    if first is None:
        return None
    plan = plan_for(env, first.get("group_a"), str(first["group_b"]))
    if list(plan.a_targets) != first.get("a_targets") or list(plan.b_targets) != first.get("b_targets"):
        raise AbRefused(f"the groups of environment {env.name} changed since stage 1 of deployment {deployment_id} "
                        f"started (then A {first.get('a_targets')}, B {first.get('b_targets')}); the deployment "
                        "is rolled back: promote again")
    return plan


def run_ab_strategy(env: Environment, ledger: AuditLog, deployment_id: str, pairs: list[tuple[Target, TargetPlan]],
                    *, stage: int | None, previous: Mapping[str, Mapping[str, str | None]] | None = None,
                    poll_s: float = 1.0) -> AbOutcome:
    """Run stage `stage` (0-based; None: every stage) of the deployment. `previous`: what each target
    ran before the deployment (the ledger's record); None before stage 1 changed anything: read now."""
    try:
        plan, previous = _plan(env, ledger, deployment_id, pairs, stage, previous)
    except AbRefused as exc:  # nothing changed: the deployment fails, with the reason
        log.error("%s", exc)
        return AbOutcome(status="failed", targets=[], error=str(exc), deployment_id=deployment_id)
    total = len(plan.stages)

    def started(s: AbStage) -> None:
        log.info("stage %d of %d: %d %% on %s", s.index + 1, total, s.share, plan.group_b)
        ledger.audit("stella", STAGE_STARTED, _subject(deployment_id),
                     {"stage": s.index, "share": s.share, "threshold": s.threshold, "up": list(s.up),
                      "down": list(s.down), **plan.to_dict()})

    def ended(r: AbStageReport) -> None:
        ledger.audit("stella", STAGE_ENDED, _subject(deployment_id),
                     {"stage": r.index, "status": r.status, "healthy_share": r.healthy_share,
                      "readings": r.readings, "unhealthy": {n: w for n, w in r.healthy.items() if w}})

    outcome = run_ab(plan, pairs, previous, stages=None if stage is None else [stage],
                     max_parallel=env.max_parallel, timeout_s=env.deploy_timeout_s, poll_s=poll_s,
                     on_stage_start=started, on_stage_end=ended)
    failed = [r for r in outcome.stages if r.status == "failed"]
    if failed:  # the reason, where people look for it (the stage's own events)
        ledger.audit("stella", STAGE_FAILED, _subject(deployment_id),
                     {"stage": failed[0].index, "error": outcome.error, "status": outcome.status,
                      "healthy_share": failed[0].healthy_share, "not_restored": outcome.not_restored})
    return outcome


def _plan(env: Environment, ledger: AuditLog, deployment_id: str, pairs: list[tuple[Target, TargetPlan]],
          stage: int | None, previous: Mapping[str, Mapping[str, str | None]] | None
          ) -> tuple[AbPlan, Mapping[str, Mapping[str, str | None]]]:
    if previous is None:
        previous = {t.name: {c: d for c, d in t.facts(p.app).digests().items() if d} for t, p in pairs}
    plan = recorded_plan(env, ledger, deployment_id) if stage else None
    if plan is None:
        plan = plan_from_previous(env, previous)
    by_name = {t.name: t for t, _ in pairs}
    cannot = [f"{n} ({type(by_name[n]).__name__})" for n in plan.a_targets if not isinstance(by_name[n], Parkable)]
    if cannot:
        raise AbRefused(f"the targets of group {plan.group_a} cannot stop the app's workloads and keep them "
                        f"(no park): {', '.join(cannot)}; strategy ab needs targets of a type that can (docker)")
    return plan, previous


def left_out(env: Environment, ledger: AuditLog, deployment_id: str) -> dict[str, str]:
    """Targets verification leaves out: every target outside group B (A's are stopped)."""
    plan = recorded_plan(env, ledger, deployment_id)
    if plan is None:
        return {}
    why = (f"group {plan.group_a}: its workloads were stopped by the A/B deployment (kept, not removed)"
           if plan.group_a else "the other A/B group, idle")
    return {t.name: why for t in env.targets if t.name not in plan.b_targets}
