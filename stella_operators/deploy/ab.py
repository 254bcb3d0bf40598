"""A/B deployments by target groups (`strategy: ab`), for workers without HTTP traffic (queue
consumers): nothing routes requests to them, so capacity is moved by starting and stopping whole
targets. A Docker host runs one container per component (there is no replica count in the
target contract), so a stage moves a *share of each group's targets*.

What each setting means (estate `strategy: ab`, `ab:` block):

- **groups**: the two target groups. Group A is the one whose targets run the app now (read from
  their facts before anything changes, recorded with stage 1); the release goes to group B, the
  other one. When neither runs the app yet, B is the first group listed. Both running it (an
  earlier deployment left a mix) is refused before anything changes.
- **stages**: after stage k (share s_k percent), ceil(|B| * s_k / 100) of B's targets run the
  release and floor(|A| * s_k / 100) of A's are stopped, in estate order (deploy/ab_plan.py).
- **a stage** (each one is a DAG task; its start is recorded before any target changes):
    1. B's new share starts: the two-phase engine (deploy/engine.py) on those targets, all or
       nothing -- a target whose workload never becomes healthy fails the stage;
    2. **stage_wait_s**: B's share runs; the health of *every* B target started so far is read
       from its facts (each long-running component at the planned digest and healthy by its own
       health check) every `poll_s` and once more at the end of the wait;
    3. **health_threshold**: at every reading at least this percent of those B targets must be
       healthy, else the stage fails at once (a queue consumer that crashes on its first
       messages passes its start check and fails here);
    4. A's share stops: each target's workloads are *parked* (stopped, kept: the target's
       `park`, see targets/contract.py), then its facts must show nothing of the app running.
  B starts before A stops, so with every B target healthy the share of the fleet at work never
  drops below 100 %; `AbStage.promised_capacity` is the floor a lower threshold allows.
- **on_failure** (only `rollback`): A comes back first -- every A target stopped so far starts
  its kept workloads again (`restore` to the digests it ran before) -- then every B target
  started so far is restored to running nothing. The outcome is `rolled_back` with the reason
  (which stage, which targets, the healthy share against the threshold), or `failed` naming the
  targets that could not be restored.
Pure Python: targets do the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from stella_operators.deploy.ab_plan import AbPlan, AbStage
from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome, run_deployment
from stella_operators.deploy.rollback import restore_targets
from stella_operators.targets.contract import Parkable, Target, TargetPlan

log = logging.getLogger(__name__)


@dataclass
class AbStageReport:
    index: int
    share: int
    up: list[str]
    down: list[str]
    status: str = "pending"                      # pending | done | failed
    healthy: dict[str, str | None] = field(default_factory=dict)   # B target -> None (healthy) or why not
    healthy_share: float | None = None           # percent of B's started targets healthy at the last reading
    readings: int = 0
    error: str | None = None


@dataclass
class AbOutcome(DeploymentOutcome):
    group: str | None = None                     # B: the group that received the release
    previous_group: str | None = None            # A: the group that ran the app before
    stages: list[AbStageReport] = field(default_factory=list)


class _StageFailed(Exception):
    pass


def health_of(target: Target, plan: TargetPlan) -> str | None:
    """None when every long-running component runs the planned digest and is healthy; else why not."""
    try:
        facts = target.facts(plan.app)
    except Exception as exc:  # noqa: BLE001 - an unreachable worker is not a healthy one
        return f"cannot read facts: {exc}"
    for spec in plan.components:
        if spec.run_once:
            continue
        rc = facts.components.get(spec.component.name)
        if rc is None:
            return f"{spec.component.name} not running"
        if rc.digest != spec.component.digest:
            return f"{spec.component.name} runs {rc.digest}, planned {spec.component.digest}"
        if rc.healthy is not True:
            return f"{spec.component.name} unhealthy"
    return None


def run_ab(plan: AbPlan, pairs: Sequence[tuple[Target, TargetPlan]], previous: Mapping[str, Mapping[str, str | None]],
           *, stages: Sequence[int] | None = None, max_parallel: int = 4, timeout_s: float = 600,
           cleanup_timeout_s: float = 300, poll_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic,
           on_stage_start: Callable[[AbStage], None] | None = None,
           on_stage_end: Callable[[AbStageReport], None] | None = None) -> AbOutcome:
    """Run `stages` (0-based indexes, in order; default all) of `plan` (module docstring). Stages
    before the first one given must have completed (a DAG task per stage). `previous` is what each
    target ran before the deployment (what a rollback restores). `on_stage_start` is called before
    a stage touches anything, `on_stage_end` when it completed (not when it failed)."""
    t0 = clock()
    by_name = {t.name: (t, p) for t, p in pairs}
    missing = [n for n in (*plan.a_targets, *plan.b_targets) if n not in by_name]
    if missing:
        raise ValueError(f"no target for {', '.join(missing)}")
    wanted = list(range(len(plan.stages))) if stages is None else list(stages)
    reports: list[AbStageReport] = []
    outcomes: dict[str, TargetOutcome] = {}
    failure: str | None = None
    for k in wanted:
        stage = plan.stage(k)
        report = AbStageReport(k, stage.share, list(stage.up), list(stage.down))
        reports.append(report)
        if on_stage_start is not None:
            on_stage_start(stage)
        log.info("A/B stage %d of %d (%d %%): starting %s on %s, then stopping %s on %s", k + 1, len(plan.stages),
                 stage.share, ", ".join(stage.up) or "nothing", plan.group_b, ", ".join(stage.down) or "nothing",
                 plan.group_a or "-")
        try:
            _run_stage(plan, stage, report, by_name, previous, outcomes, max_parallel=max_parallel,
                       timeout_s=timeout_s, cleanup_timeout_s=cleanup_timeout_s, poll_s=poll_s, sleep=sleep,
                       clock=clock)
        except _StageFailed as exc:
            report.status, report.error = "failed", str(exc)
            failure = f"stage {k + 1} of {len(plan.stages)} ({stage.share} %): {exc}"
            log.error("A/B %s", failure)
            break
        report.status = "done"
        if on_stage_end is not None:
            on_stage_end(report)
    if failure is not None:
        outcome = _roll_back(plan, plan.stage(reports[-1].index), by_name, previous, outcomes, failure,
                             cleanup_timeout_s)
    else:
        changed = any(o.status in ("deployed", "stopped") for o in outcomes.values())
        outcome = AbOutcome(status="deployed" if changed else "unchanged", targets=list(outcomes.values()))
    outcome.group, outcome.previous_group, outcome.stages = plan.group_b, plan.group_a, reports
    outcome.deployment_id = pairs[0][1].deployment_id if pairs else None
    outcome.duration_ms = int((clock() - t0) * 1000)
    return outcome


def _run_stage(plan: AbPlan, stage: AbStage, report: AbStageReport, by_name: dict[str, tuple[Target, TargetPlan]],
               previous: Mapping[str, Mapping[str, str | None]], outcomes: dict[str, TargetOutcome], *,
               max_parallel: int, timeout_s: float, cleanup_timeout_s: float, poll_s: float,
               sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
    # 1. B's new share starts, all or nothing.
    if stage.up:
        result = run_deployment([by_name[n] for n in stage.up], max_parallel=max_parallel, timeout_s=timeout_s,
                                cleanup_timeout_s=cleanup_timeout_s, finalize=False)
        for t in result.targets:
            outcomes[t.target] = t
        if not result.ok:
            raise _StageFailed(f"starting {', '.join(stage.up)} on {plan.group_b} failed: {result.error}")
    # 2 + 3. B's health during the wait, against the threshold.
    deadline = clock() + plan.wait_s
    while True:
        _check_health(stage, report, by_name)
        left = deadline - clock()
        if left <= 0:
            break
        sleep(min(poll_s, left))
    # 4. A's share stops (parked, kept for a rollback).
    if stage.down:
        _park(plan, stage, by_name, previous, outcomes, max_parallel, cleanup_timeout_s)


def _check_health(stage: AbStage, report: AbStageReport, by_name: dict[str, tuple[Target, TargetPlan]]) -> None:
    names = list(stage.running_b)
    if not names:
        return
    with ThreadPoolExecutor(max_workers=min(8, len(names)), thread_name_prefix="stella-ab-health") as pool:
        reading = dict(zip(names, pool.map(lambda n: health_of(*by_name[n]), names), strict=True))
    report.healthy, report.readings = reading, report.readings + 1
    share = 100 * sum(1 for why in reading.values() if why is None) / len(names)
    report.healthy_share = share
    if share + 1e-9 < stage.threshold:
        sick = "; ".join(f"{n}: {why}" for n, why in reading.items() if why is not None)
        raise _StageFailed(f"{share:.0f} % of the started targets healthy, threshold {stage.threshold:g} % ({sick})")


def _park(plan: AbPlan, stage: AbStage, by_name: dict[str, tuple[Target, TargetPlan]],
          previous: Mapping[str, Mapping[str, str | None]], outcomes: dict[str, TargetOutcome],
          max_parallel: int, timeout_s: float) -> None:
    def park_one(name: str) -> str | None:
        target, tplan = by_name[name]
        if not isinstance(target, Parkable):
            return f"{name}: a {type(target).__name__} cannot stop the app's workloads and keep them (no park)"
        try:
            target.park(tplan)
            running = {c: d for c, d in target.facts(tplan.app).digests().items() if d}
        except Exception as exc:  # noqa: BLE001 - named and rolled back
            return f"{name}: {exc}"
        if running:
            return f"{name}: still runs {running} after stopping it"
        return None

    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(stage.down))),
                            thread_name_prefix="stella-ab-park") as pool:
        futures = {n: pool.submit(park_one, n) for n in stage.down}
        errors = []
        for name, fut in futures.items():
            try:
                problem = fut.result(timeout=timeout_s)
            except TimeoutError:
                problem = f"{name}: stopping did not finish within {timeout_s:.0f} s"
            outcomes[name] = TargetOutcome(target=name, status="failed" if problem else "stopped",
                                           digests_before=dict(previous.get(name, {})), error=problem,
                                           log=[problem or f"stopped (kept for a rollback): group {plan.group_a}"])
            if problem:
                errors.append(problem)
    if errors:
        raise _StageFailed(f"stopping {', '.join(stage.down)} on {plan.group_a} failed: {'; '.join(errors)}")


def _roll_back(plan: AbPlan, stage: AbStage, by_name: dict[str, tuple[Target, TargetPlan]],
               previous: Mapping[str, Mapping[str, str | None]], outcomes: dict[str, TargetOutcome],
               failure: str, cleanup_timeout_s: float) -> AbOutcome:
    """A back first (capacity), then B down; every target the stages up to `stage` touched."""
    not_restored: list[str] = []
    before = plan.stage(stage.index - 1) if stage.index > 0 else None
    stopped = [*(before.stopped_a if before else ()), *(n for n in stage.down if n in outcomes)]
    started = [*(before.running_b if before else ()), *(n for n in stage.up if n in outcomes)]
    for names in (stopped, started):
        items = [(*by_name[n], dict(previous.get(n, {}))) for n in names]
        for r in restore_targets(items, max_parallel=max(1, len(items)), timeout_s=cleanup_timeout_s):
            out = outcomes.setdefault(r.target, TargetOutcome(target=r.target, status="rolled_back",
                                                              digests_before=dict(previous.get(r.target, {}))))
            if r.digests_after is not None:
                out.digests_after = r.digests_after
            if r.ok:
                out.status = "rolled_back"
                out.log.append("restored to what it ran before the A/B deployment")
            else:
                out.status, out.error = "failed", r.error
                not_restored.append(r.target)
    targets = list(outcomes.values())
    if not_restored:
        return AbOutcome(status="failed", targets=targets, not_restored=not_restored,
                         error=f"{failure}; could not restore {', '.join(not_restored)}")
    return AbOutcome(status="rolled_back", targets=targets, error=failure)
