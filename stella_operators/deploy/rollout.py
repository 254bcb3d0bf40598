"""Rolling deployments: the two-phase engine applied batch by batch, wave by wave.

What each setting means (estate `strategy: rolling`, `rolling:` block, `on_failure`):

- **batches**: the environment's targets in estate order, cut into batches of `batch_size`
  targets (or `batch_percent` of them, rounded up, at least 1). Batches run one after the other;
  the batch count is known from the estate alone (the DAG shows one task per batch).
- **waves and max_unavailable**: a target is *unavailable* from the moment its wave starts
  preparing until that wave has committed and been checked (or restored), and for ever after if a
  failure left it unrestored. At no moment are more than `max_unavailable` targets unavailable: a
  batch runs in waves of at most `max_unavailable - (targets left unrestored)` targets (so normally
  one wave of the whole batch). Each wave is all or nothing (deploy/engine.py). When targets left
  unrestored use up the whole budget, the rollout stops as after a failure (`continue` cannot go on).
- **pause_s**: the wait between two batches (not before the first, not after the last).
- **on_failure** (a wave failed; the engine has already put that wave's targets back):
  `rollback` restores every target changed by earlier waves to the digests it ran before
  (deploy/rollback.py) -> `rolled_back`, or `failed` naming the targets that could not be restored;
  `pause` stops: finished batches keep the new release, the rest are recorded as `pending` for a
  human (the rollout is `paused`); `continue` marks the targets that failed `skipped` (they run
  their previous release) and retries the rest of the wave without them, then goes on; the rollout
  ends `deployed` with the skipped targets named, `failed` if every target was skipped.
Pure Python: targets do the I/O.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from stella_operators.deploy.engine import DeploymentOutcome, DeploymentStatus, TargetOutcome, run_deployment
from stella_operators.deploy.rollback import restore_targets
from stella_operators.estate.models import Environment
from stella_operators.targets.contract import Target, TargetPlan

log = logging.getLogger(__name__)

OnFailure = Literal["rollback", "pause", "continue"]


@dataclass(frozen=True)
class RollingPolicy:
    batches: tuple[tuple[str, ...], ...]
    max_unavailable: int
    pause_s: float = 0.0
    on_failure: OnFailure = "rollback"

    def __post_init__(self) -> None:
        if self.max_unavailable < 1:
            raise ValueError("max_unavailable must be >= 1")
        names = [n for b in self.batches for n in b]
        if len(set(names)) != len(names) or any(not b for b in self.batches):
            raise ValueError(f"batches must be non-empty and name each target once: {self.batches}")


def rolling_policy(env: Environment) -> RollingPolicy:
    """The rolling policy of an environment (`strategy: rolling`); all_at_once is one batch, one wave."""
    names = [t.name for t in env.targets]
    if env.strategy != "rolling" or env.rolling is None:
        return RollingPolicy(batches=(tuple(names),), max_unavailable=len(names), on_failure="rollback")
    size = batch_size_of(len(names), batch_size=env.rolling.batch_size, batch_percent=env.rolling.batch_percent)
    return RollingPolicy(batches=cut_batches(names, size), max_unavailable=env.rolling.max_unavailable or size,
                         pause_s=env.rolling.pause_s, on_failure=env.on_failure)


def batch_size_of(total: int, *, batch_size: int | None = None, batch_percent: float | None = None) -> int:
    if batch_size is not None:
        return max(1, min(batch_size, total))
    if batch_percent is None:
        raise ValueError("give batch_size or batch_percent")
    return max(1, min(total, math.ceil(total * batch_percent / 100 - 1e-9)))


def cut_batches(targets: Sequence[str], size: int) -> tuple[tuple[str, ...], ...]:
    """Targets in their order, `size` per batch (the last one may be smaller)."""
    return tuple(tuple(targets[i:i + size]) for i in range(0, len(targets), size))


@dataclass
class BatchReport:
    index: int                       # 0-based; people see `batch index + 1`
    targets: list[str]
    status: str = "pending"          # pending | deployed | unchanged | failed | skipped-some | not_started
    waves: list[list[str]] = field(default_factory=list)
    error: str | None = None


@dataclass
class RolloutOutcome(DeploymentOutcome):
    batches: list[BatchReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)    # on_failure continue: failed, left on their previous release
    pending: list[str] = field(default_factory=list)    # on_failure pause: never attempted, for a human


@dataclass
class _Changed:
    target: Target
    plan: TargetPlan
    outcome: TargetOutcome


def run_rolling(pairs: list[tuple[Target, TargetPlan]], policy: RollingPolicy, *, max_parallel: int = 4,
                timeout_s: float = 600, cleanup_timeout_s: float = 300,
                sleep: Callable[[float], None] = time.sleep,
                on_batch: Callable[[BatchReport], None] | None = None,
                on_batch_start: Callable[[BatchReport], None] | None = None,
                only_batches: Sequence[int] | None = None, unavailable: Sequence[str] = ()) -> RolloutOutcome:
    """Run the batches of `policy` over `pairs` (see the module docstring). `timeout_s` bounds each
    wave's prepare phase. `on_batch` is told about each batch as it ends (progress, logs).
    `only_batches` runs a subset (a DAG task per batch); targets of other batches are `unchanged`
    in the outcome and never touched. `unavailable`: targets earlier calls left unrestored (they
    count against max_unavailable). `on_batch_start` is called before a batch touches anything."""
    t0 = time.monotonic()
    by_name = {t.name: (t, p) for t, p in pairs}
    if len(by_name) != len(pairs):
        raise ValueError("each target may appear once per deployment")
    planned = [n for b in policy.batches for n in b]
    if sorted(planned) != sorted(by_name):
        raise ValueError(f"the batches name {sorted(planned)}, the deployment has {sorted(by_name)}")
    wanted = set(range(len(policy.batches)) if only_batches is None else only_batches)
    # Targets of the batches to run start `cancelled` (not reached); others are not this call's business.
    outcomes = {n: TargetOutcome(target=n, status="cancelled" if i in wanted else "unchanged")
                for i, b in enumerate(policy.batches) for n in b}
    reports = [BatchReport(i, list(b)) for i, b in enumerate(policy.batches)]
    changed: list[_Changed] = []
    unrestored: list[str] = list(unavailable)
    skipped: list[str] = []
    failure: str | None = None
    ran_one = False
    for report in reports:
        if report.index not in wanted:
            continue
        if ran_one and policy.pause_s > 0:
            log.info("rolling: pausing %.1f s before batch %d", policy.pause_s, report.index + 1)
            sleep(policy.pause_s)
        ran_one = True
        if on_batch_start is not None:
            on_batch_start(report)
        failure = _run_batch(report, by_name, policy, outcomes, changed, unrestored, skipped,
                             max_parallel=max_parallel, timeout_s=timeout_s, cleanup_timeout_s=cleanup_timeout_s)
        if on_batch is not None:
            on_batch(report)
        if failure is not None:
            break
    outcome = _finish(policy, reports, outcomes, changed, unrestored, skipped, failure, cleanup_timeout_s)
    outcome.deployment_id = pairs[0][1].deployment_id if pairs else None
    outcome.duration_ms = int((time.monotonic() - t0) * 1000)
    return outcome


def _run_batch(report: BatchReport, by_name: dict[str, tuple[Target, TargetPlan]], policy: RollingPolicy,
               outcomes: dict[str, TargetOutcome], changed: list[_Changed], unrestored: list[str],
               skipped: list[str], *, max_parallel: int, timeout_s: float, cleanup_timeout_s: float) -> str | None:
    """Run one batch in waves; returns the failure that stops the rollout, or None."""
    queue = list(report.targets)
    errors: list[str] = []
    while queue:
        room = policy.max_unavailable - len(unrestored)
        if room <= 0:
            report.status = "failed"
            report.error = (f"{len(unrestored)} target(s) could not be restored ({', '.join(unrestored)}); "
                            f"max_unavailable {policy.max_unavailable} leaves no room to change more")
            return report.error
        wave, queue = queue[:room], queue[room:]
        report.waves.append(list(wave))
        log.info("rolling: batch %d, wave %d: %s", report.index + 1, len(report.waves), ", ".join(wave))
        result = run_deployment([by_name[n] for n in wave], max_parallel=max_parallel, timeout_s=timeout_s,
                                cleanup_timeout_s=cleanup_timeout_s, finalize=False)
        for t in result.targets:
            outcomes[t.target] = t
        if result.ok:
            changed.extend(_Changed(*by_name[t.target], t) for t in result.targets if t.status == "deployed")
            continue
        unrestored.extend(result.not_restored)
        errors.append(result.error or "wave failed")
        if policy.on_failure != "continue":
            report.status = "failed"
            report.error = result.error
            return result.error or "wave failed"
        failed = [t.target for t in result.targets if t.status == "failed"] or list(wave)
        for n in failed:
            outcomes[n].status = "skipped"
        skipped.extend(failed)
        queue = [n for n in wave if n not in failed] + queue  # the rest of the wave, without them
    if errors:
        report.status, report.error = "skipped-some", "; ".join(errors)
    else:
        report.status = "deployed" if any(outcomes[n].status == "deployed" for n in report.targets) else "unchanged"
    return None


def _finish(policy: RollingPolicy, reports: list[BatchReport], outcomes: dict[str, TargetOutcome],
            changed: list[_Changed], unrestored: list[str], skipped: list[str], failure: str | None,
            cleanup_timeout_s: float) -> RolloutOutcome:
    targets = [outcomes[n] for b in reports for n in b.targets]
    if failure is None:
        if skipped and len(skipped) == len(targets):
            return RolloutOutcome(status="failed", targets=targets, batches=reports, skipped=skipped,
                                  not_restored=unrestored, error="every target failed and was skipped")
        status: DeploymentStatus = "deployed" if changed or any(t.status == "deployed" for t in targets) \
            else "unchanged"
        error = f"skipped after failing: {', '.join(skipped)}" if skipped else None
        return RolloutOutcome(status=status, targets=targets, batches=reports, skipped=skipped,
                              not_restored=unrestored, error=error)
    for report in reports:
        if report.status == "pending" and any(outcomes[n].status == "cancelled" for n in report.targets):
            report.status = "not_started"
    if policy.on_failure in ("pause", "continue"):
        # Stop here; finished batches keep the new release. `continue` lands here only when
        # targets left unrestored use up max_unavailable.
        pending = [t.target for t in targets if t.status == "cancelled"]
        for n in pending:
            outcomes[n].status = "pending"
        left = [t.target for t in targets if t.status in ("pending", "failed", "rolled_back")
                and t.target not in unrestored]  # estate order
        return RolloutOutcome(status="paused", targets=targets, batches=reports, skipped=skipped, pending=left,
                              not_restored=unrestored, error=f"paused: {failure}")
    # rollback: every target changed by an earlier wave goes back to what it ran before.
    if changed:
        log.warning("rolling: restoring %d target(s) changed by earlier waves", len(changed))
    results = restore_targets([(c.target, c.plan, c.outcome.digests_before) for c in changed],
                              max_parallel=max(1, len(changed)), timeout_s=cleanup_timeout_s)
    for c, r in zip(changed, results, strict=True):
        if r.digests_after is not None:
            c.outcome.digests_after = r.digests_after
        if r.ok:
            c.outcome.status = "rolled_back"
            c.outcome.log.append("restored to the previous digests (a later batch failed)")
        else:
            c.outcome.status = "failed"
            c.outcome.error = r.error
            unrestored.append(r.target)
    if unrestored:
        return RolloutOutcome(status="failed", targets=targets, batches=reports, not_restored=sorted(set(unrestored)),
                              error=f"{failure}; could not restore {', '.join(sorted(set(unrestored)))}")
    return RolloutOutcome(status="rolled_back", targets=targets, batches=reports, error=failure)
