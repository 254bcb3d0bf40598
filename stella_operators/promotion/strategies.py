"""How a promotion's deployment runs its environment's strategy, and what the ledger keeps of it.

- rolling: batch k is run by one call (one DAG task per batch). Before a batch runs, an audit
  event `deployment.batch_started` (subject `deployment:ID`, detail `{batch: k}`) is written; its
  target results are written when it ends. So a batch task that finds its own start event but no
  results for its targets was interrupted mid-batch (the worker died): it is never resumed half
  way, the whole deployment is rolled back (promotion/recovery.py) -- the rule of the single deploy
  task, per batch.
- canary: as blue_green (the same `deployment.switch` event, written before the new group enters
  service, and again when the canary reaches 100 %, which starts the switch-back window); each
  step's start is written (`deployment.canary_step`) before its weight is set (promotion/canary.py);
- blue_green: the group that receives the release is written (`deployment.switch`, detail `{group,
  previous_group}`) *before* the router moves any traffic, so that recovery knows where to send
  the traffic back; `deployment.retired` records the removal of the previous set after the window.
Plain Python.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from stella_operators.deploy.blue_green import run_blue_green
from stella_operators.deploy.canary import CanaryOutcome, begin_canary
from stella_operators.deploy.engine import DeploymentOutcome, run_deployment
from stella_operators.deploy.rollout import BatchReport, RollingPolicy, rolling_policy, run_rolling
from stella_operators.estate.models import Environment, TargetConfig
from stella_operators.promotion import ab
from stella_operators.routing.contract import Route, Router
from stella_operators.routing.registry import build_router
from stella_operators.targets.contract import Target, TargetPlan

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from stella_operators.ledger.protocols import AuditLog
    from stella_operators.ledger.records import Deployment

BATCH_STARTED = "deployment.batch_started"
SWITCH = "deployment.switch"
RETIRED = "deployment.retired"


def batch_count(env: Environment) -> int:
    """Batches of the environment's strategy: the DAG's deploy tasks (1 for all_at_once, blue_green)."""
    if env.strategy == "ab":
        return ab.stage_count(env)
    return len(rolling_policy(env).batches) if env.strategy == "rolling" else 1


def policy_of(env: Environment) -> RollingPolicy:
    return rolling_policy(env)


def subject(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


def batch_started(ledger: AuditLog, deployment_id: str, batch: int) -> bool:
    return any(e.action == BATCH_STARTED and e.detail.get("batch") == batch
               for e in ledger.audit_events(subject(deployment_id)))


def mark_batch_started(ledger: AuditLog, deployment_id: str, batch: int, targets: list[str]) -> None:
    ledger.audit("stella", BATCH_STARTED, subject(deployment_id), {"batch": batch, "targets": targets})


def results_by_target(dep: Deployment) -> dict[str, str]:
    """Target -> its last recorded status in this deployment."""
    return {t.target: t.status for t in dep.targets}


# -- blue-green --------------------------------------------------------------------------------------

def _routed(env: Environment) -> tuple[Any, tuple[str, str] | None]:
    """The environment's router settings block and its two groups (None: router `none`)."""
    if env.blue_green is not None:
        return env.blue_green, env.blue_green.groups
    if env.canary is not None:
        return env.canary, env.canary.group_names()
    raise ValueError(f"environment {env.name} has no router (strategy {env.strategy})")


def route_of(env: Environment) -> Route:
    block, groups = _routed(env)
    servers = dict(block.router.settings.get("servers") or {})
    return Route(backend=str(block.router.settings.get("backend", "")),
                 groups={g: tuple(servers.get(t.name, t.name) for t in env.targets if t.group == g)
                         for g in groups or ()})


def router_of(env: Environment) -> Router:
    block, _ = _routed(env)
    return build_router(block.router.type, dict(block.router.settings))


def group_targets(env: Environment, group: str) -> list[TargetConfig]:
    return [t for t in env.targets if t.group == group]


def mark_switch(ledger: AuditLog, deployment_id: str, group: str, previous_group: str | None) -> None:
    ledger.audit("stella", SWITCH, subject(deployment_id), {"group": group, "previous_group": previous_group})


def switch_of(ledger: AuditLog, deployment_id: str) -> dict[str, Any] | None:
    """{group, previous_group, at} of the deployment's switch, or None if it never got that far."""
    for e in reversed(ledger.audit_events(subject(deployment_id))):
        if e.action == SWITCH:
            return {**e.detail, "at": e.at}
    return None


# -- running the strategy ------------------------------------------------------------------------------

def run_strategy(env: Environment, ledger: AuditLog, deployment_id: str, pairs: list[tuple[Target, TargetPlan]], *,
                 batch: int | None = None, unavailable: Sequence[str] = ()) -> DeploymentOutcome:
    """Deploy `pairs` with the environment's strategy. `batch` (rolling): run only that batch, whose
    targets are the only ones in `pairs`; None: every batch. ab: `batch` is the stage and `pairs`
    holds every target (a stage starts some of B's and stops some of A's)."""
    if env.strategy == "ab":
        return ab.run_ab_strategy(env, ledger, deployment_id, pairs, stage=batch)
    if env.strategy == "blue_green":
        bg = env.blue_green
        assert bg is not None  # the estate model requires the block
        route = route_of(env)
        by_name = {t.name: (t, p) for t, p in pairs}
        groups = {g: [by_name[c.name] for c in group_targets(env, g)] for g in bg.groups}
        return run_blue_green(groups, router_of(env), route, max_parallel=env.max_parallel,
                              timeout_s=env.deploy_timeout_s, ready_timeout_s=bg.ready_timeout_s,
                              on_switch=lambda g, prev: mark_switch(ledger, deployment_id, g, prev))
    if env.strategy == "canary":
        cs = env.canary
        assert cs is not None  # the estate model requires the block
        groups_of = cs.group_names()
        if groups_of is None:  # router none: the steps deploy their share of the targets, none yet
            return CanaryOutcome(status="unchanged", targets=[])
        by_name = {t.name: (t, p) for t, p in pairs}
        groups = {g: [by_name[c.name] for c in group_targets(env, g)] for g in groups_of}
        return begin_canary(groups, router_of(env), route_of(env), max_parallel=env.max_parallel,
                            timeout_s=env.deploy_timeout_s, ready_timeout_s=cs.ready_timeout_s,
                            on_begin=lambda g, prev: mark_switch(ledger, deployment_id, g, prev))
    if env.strategy == "rolling":
        policy = policy_of(env)
        if batch is not None:
            policy = replace(policy, batches=(policy.batches[batch],), pause_s=0)

        def started(report: BatchReport) -> None:
            index = report.index if batch is None else batch
            log.info("batch %d of %d: %s", index + 1, batch_count(env), ", ".join(report.targets))
            mark_batch_started(ledger, deployment_id, index, report.targets)

        def ended(report: BatchReport) -> None:
            index = report.index if batch is None else batch
            log.info("batch %d: %s%s", index + 1, report.status, f" ({report.error})" if report.error else "")

        return run_rolling(pairs, policy, max_parallel=env.max_parallel, timeout_s=env.deploy_timeout_s,
                           on_batch_start=started, on_batch=ended, unavailable=unavailable)
    return run_deployment(pairs, max_parallel=env.max_parallel, timeout_s=env.deploy_timeout_s, finalize=False)


def later_targets(env: Environment, batch: int | None) -> list[str]:
    """Targets of the batches after `batch` (what a pause leaves besides the batch itself)."""
    if batch is None or env.strategy != "rolling":
        return []
    return [n for b in policy_of(env).batches[batch + 1:] for n in b]


def targets_to_verify(env: Environment, ledger: AuditLog, dep: Deployment | None) -> tuple[list[TargetConfig],
                                                                                           dict[str, str]]:
    """The targets that must run the release after this deployment, and the others with the reason
    they are left out (rolling + continue: skipped targets; blue-green: the previous set)."""
    if dep is None:
        return list(env.targets), {}
    left_out: dict[str, str] = {}
    if env.strategy in ("blue_green", "canary"):
        switch = switch_of(ledger, dep.id)
        if switch is not None and switch.get("group"):
            left_out = {t.name: f"previous set ({switch.get('previous_group')}), kept for the switch-back window"
                        for t in env.targets if t.group != switch["group"]}
    if env.strategy == "ab":
        left_out = ab.left_out(env, ledger, dep.id)
    for name, status in results_by_target(dep).items():
        if status == "skipped":
            left_out[name] = "skipped after failing (on_failure: continue); runs its previous release"
    return [t for t in env.targets if t.name not in left_out], left_out
