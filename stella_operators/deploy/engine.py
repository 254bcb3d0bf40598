"""Two-phase deployment over many targets, whatever their type.

    facts before  -> previous digests per target (for the record and for rollbacks)
    phase 1       -> prepare on every target in parallel (new workload beside the old, healthy)
    phase 2       -> only if every prepare succeeded in time: commit on every changed target
    verify        -> facts after: each target must run exactly the planned digests
    finalize      -> (optional) remove the old workloads commit kept

If any prepare fails (or the deployment's time budget runs out) nothing is committed anywhere:
every target that prepared something, including the failed one's partial work, is discarded, so
each host runs what it ran before. If a commit or the check after it fails, some hosts may have
switched already: every changed target is restored to its previous digests (deploy/rollback.py).
Either way the outcome is `rolled_back`, or `failed` naming the hosts that could not be restored.
Pure Python: no Airflow, no Docker; targets do the I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

from stella_operators.deploy.rollback import finalize_targets, restore_targets
from stella_operators.targets.contract import PreparedChange, Target, TargetPlan, VersionSticker

log = logging.getLogger(__name__)

# `paused`, `skipped` and `pending` come from rolling deployments' on_failure (deploy/rollout.py);
# `stopped`: an A/B deployment stopped the target's workloads (group A, deploy/ab.py).
DeploymentStatus = Literal["deployed", "unchanged", "rolled_back", "failed", "paused"]
TargetStatus = Literal["deployed", "unchanged", "rolled_back", "failed", "cancelled", "skipped", "pending",
                       "stopped"]


@dataclass
class TargetOutcome:
    target: str
    status: TargetStatus
    digests_before: dict[str, str | None] = field(default_factory=dict)
    digests_after: dict[str, str | None] = field(default_factory=dict)
    timings_ms: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: str | None = None
    sticker: VersionSticker | None = None  # the plan's sticker, stored with the target result
    host_files: dict[str, str] = field(default_factory=dict)  # PreparedChange.host_files (for the locker)


@dataclass
class DeploymentOutcome:
    status: DeploymentStatus
    targets: list[TargetOutcome]
    error: str | None = None
    deployment_id: str | None = None
    duration_ms: int = 0
    not_restored: list[str] = field(default_factory=list)  # targets a rollback could not restore

    def target(self, name: str) -> TargetOutcome:
        for t in self.targets:
            if t.target == name:
                return t
        raise KeyError(name)

    @property
    def ok(self) -> bool:
        return self.status in ("deployed", "unchanged")

    def previous_digests(self) -> dict[str, dict[str, str | None]]:
        return {t.target: dict(t.digests_before) for t in self.targets}


@dataclass(eq=False)
class _Slot:
    """Mutable per-target state shared between the coordinator and the worker threads."""

    target: Target
    plan: TargetPlan
    outcome: TargetOutcome
    prepared: PreparedChange | None = None
    error: str | None = None
    timed_out: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _err(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def run_deployment(pairs: list[tuple[Target, TargetPlan]], *, max_parallel: int = 4,
                   timeout_s: float = 600, cleanup_timeout_s: float = 300, finalize: bool = True
                   ) -> DeploymentOutcome:
    """Deploy each plan to its target, all or nothing (see the module docstring).

    `timeout_s` bounds facts-before + prepare on all targets together; once every prepare has
    succeeded, commit and verification run to the end (each bounded by `cleanup_timeout_s`, like
    the discards of a rollback). `finalize=False` keeps the old workloads for a later rollback
    (the caller finalizes once the deployment is verified).
    """
    t_start = time.monotonic()
    if not pairs:
        raise ValueError("run_deployment needs at least one (target, plan) pair")
    names = [t.name for t, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"each target may appear once per deployment: {names}")
    if max_parallel < 1:
        raise ValueError("max_parallel must be >= 1")
    deployment_id = pairs[0][1].deployment_id
    slots = [_Slot(target=t, plan=p, outcome=TargetOutcome(target=t.name, status="cancelled", sticker=p.sticker))
             for t, p in pairs]
    pool = ThreadPoolExecutor(max_workers=min(max_parallel, len(slots)), thread_name_prefix="stella-deploy")
    try:
        outcome = _run(slots, pool, t_start + timeout_s, timeout_s, cleanup_timeout_s)
    except BaseException:
        # Interrupted (a task time-out or kill raised into this thread): ask the steps running on
        # targets to stop, and let them end, so that the caller's rollback sees all they started.
        for slot in slots:
            cancel = getattr(slot.target, "cancel", None)
            if callable(cancel):
                try:
                    cancel()
                except Exception:  # noqa: BLE001 - best effort; the rollback still follows
                    log.warning("%s: could not cancel its steps in flight", slot.target.name)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        if finalize and outcome.ok:
            for problem in finalize_targets([(s.target, s.plan) for s in slots if s.outcome.status == "deployed"]):
                outcome.target(problem.split(":", 1)[0]).log.append(f"finalize: {problem}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # an overrunning prepare must not block us
    outcome.deployment_id = deployment_id
    outcome.duration_ms = _ms(t_start)
    log.info("deployment %s: %s in %d ms%s", deployment_id, outcome.status, outcome.duration_ms,
             f" ({outcome.error})" if outcome.error else "")
    return outcome


def _prepare_job(slot: _Slot) -> None:
    """facts before + prepare on one target; never raises (errors land in the slot)."""
    out = slot.outcome
    t0 = time.monotonic()
    try:
        out.digests_before = slot.target.facts(slot.plan.app).digests()
    except Exception as exc:  # noqa: BLE001
        slot.error = f"{slot.target.name}: cannot read facts before deploying: {_err(exc)}"
        return
    finally:
        out.timings_ms["facts_before"] = _ms(t0)
    t0 = time.monotonic()
    try:
        prepared = slot.target.prepare(slot.plan)
    except BaseException as exc:  # noqa: BLE001 - a target may raise anything; DeployError carries `prepared`
        with slot.lock:
            slot.prepared = getattr(exc, "prepared", None)
            slot.error = _err(exc)
        return
    finally:
        out.timings_ms["prepare"] = _ms(t0)
    with slot.lock:
        slot.prepared = prepared


def _discard(slot: _Slot) -> str | None:
    with slot.lock:
        prepared = slot.prepared
    if prepared is None:
        return None
    t0 = time.monotonic()
    try:
        slot.target.discard(slot.plan, prepared)
    except Exception as exc:  # noqa: BLE001
        return f"{slot.target.name}: discard failed: {_err(exc)}"
    finally:
        slot.outcome.timings_ms["discard"] = _ms(t0)
    return None


def _discard_on_return(slot: _Slot) -> Callable[[Future[None]], None]:
    return lambda _fut: _late_discard(slot)


def _late_discard(slot: _Slot) -> None:
    """Runs in the worker thread when a prepare that overran the deadline finally returns."""
    problem = _discard(slot)
    if problem:
        log.error("late discard after the deployment timed out: %s", problem)
    else:
        log.warning("%s: prepare returned after the deployment timed out; its work was discarded",
                    slot.target.name)


def _commit(slot: _Slot) -> str | None:
    t0 = time.monotonic()
    try:
        if slot.prepared is None:  # commit is only called for slots whose prepare succeeded
            raise RuntimeError("nothing was prepared")
        slot.target.commit(slot.plan, slot.prepared)
    except Exception as exc:  # noqa: BLE001
        return f"{slot.target.name}: commit failed: {_err(exc)}"
    finally:
        slot.outcome.timings_ms["commit"] = _ms(t0)
    return None


def _read_after(slot: _Slot) -> str | None:
    t0 = time.monotonic()
    try:
        slot.outcome.digests_after = slot.target.facts(slot.plan.app).digests()
    except Exception as exc:  # noqa: BLE001
        return f"{slot.target.name}: cannot read facts after the deployment: {_err(exc)}"
    finally:
        slot.outcome.timings_ms["facts_after"] = _ms(t0)
    return None


def _map(pool: ThreadPoolExecutor, fn: Callable[[_Slot], str | None], slots: list[_Slot],
         timeout: float, what: str) -> list[tuple[_Slot, str]]:
    """fn(slot) -> error text | None, on every slot in parallel; returns (slot, problem) pairs."""
    if not slots:
        return []
    futures = {pool.submit(fn, s): s for s in slots}
    _, not_done = wait(futures, timeout=max(0.0, timeout))
    problems: list[tuple[_Slot, str]] = []
    for fut, slot in futures.items():
        if fut in not_done:
            problems.append((slot, f"{slot.target.name}: {what} did not finish within {timeout:.0f} s"))
        elif (exc := fut.exception()) is not None:
            problems.append((slot, f"{slot.target.name}: {what} failed: {_err(exc)}"))
        elif problem := fut.result():
            problems.append((slot, problem))
    return problems


def _fail(slot: _Slot, problem: str) -> None:
    slot.outcome.status = "failed"
    slot.outcome.error = "; ".join(filter(None, [slot.outcome.error, problem]))


def _finish_logs(slots: list[_Slot]) -> None:
    for slot in slots:
        with slot.lock:
            prepared = slot.prepared
        if prepared is not None:
            slot.outcome.log = list(prepared.log) + slot.outcome.log
            slot.outcome.host_files.update(prepared.host_files)
            for key, value in prepared.timings_ms.items():
                slot.outcome.timings_ms.setdefault(key, value)


def _run(slots: list[_Slot], pool: ThreadPoolExecutor, deadline: float, timeout_s: float,
         cleanup_timeout_s: float) -> DeploymentOutcome:
    # ---- phase 1: facts before + prepare everywhere, within the time budget --------------------
    futures: dict[Future[None], _Slot] = {pool.submit(_prepare_job, s): s for s in slots}
    pending = set(futures)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        done, pending = wait(pending, timeout=remaining, return_when=FIRST_COMPLETED)
        if any(futures[f].error for f in done):
            # One target failed: nothing will be committed. Prepares not started yet are
            # cancelled; started ones may finish (each is bounded) so their work can be discarded.
            pending = {f for f in pending if not f.cancel()}
            if pending:
                _, pending = wait(pending, timeout=max(0.0, deadline - time.monotonic()))
            break
    for fut in pending:
        if fut.cancel():
            continue
        slot = futures[fut]
        slot.timed_out = True
        with slot.lock:
            slot.error = slot.error or f"{slot.target.name}: prepare did not finish within {timeout_s:.0f} s"
        fut.add_done_callback(_discard_on_return(slot))  # discard as soon as it returns

    failures = [s for s in slots if s.error]
    if failures:
        return _roll_back(slots, pool, failures, cleanup_timeout_s)

    # ---- phase 2: commit on every target that changed ------------------------------------------
    changed = [s for s in slots if s.prepared is not None and s.prepared.changed]
    for slot in slots:
        slot.outcome.status = "deployed" if slot in changed else "unchanged"
    problems = _map(pool, _commit, changed, cleanup_timeout_s, "commit")
    for slot, problem in problems:
        _fail(slot, problem)

    # ---- verify: every target runs exactly the planned digests ----------------------------------
    read_problems = _map(pool, _read_after, slots, cleanup_timeout_s, "reading facts")
    unreadable = {id(s) for s, _ in read_problems}
    for slot, problem in read_problems:
        _fail(slot, problem)
    problems += read_problems
    for slot in slots:
        if id(slot) in unreadable:
            continue
        for spec in slot.plan.components:
            planned = spec.component.digest
            running = slot.outcome.digests_after.get(spec.component.name)
            if running != planned:
                problem = (f"target {slot.target.name} runs {running or 'nothing'} for component "
                           f"{spec.component.name}, planned {planned}")
                _fail(slot, problem)
                problems.append((slot, problem))
    _finish_logs(slots)
    if problems:
        return _restore(slots, changed, "; ".join(p for _, p in problems), cleanup_timeout_s)
    return DeploymentOutcome(status="deployed" if changed else "unchanged", targets=[s.outcome for s in slots])


def _restore(slots: list[_Slot], changed: list[_Slot], summary: str, cleanup_timeout_s: float) -> DeploymentOutcome:
    """After the switch began: bring every changed target back to the digests it ran before."""
    log.warning("restoring every changed target: %s", summary)
    results = restore_targets([(s.target, s.plan, s.outcome.digests_before) for s in changed],
                              max_parallel=len(changed) or 1, timeout_s=cleanup_timeout_s)
    by_name = {r.target: r for r in results}
    for slot in changed:
        r = by_name[slot.target.name]
        if r.digests_after is not None:
            slot.outcome.digests_after = r.digests_after
        if r.ok:
            if slot.outcome.status != "failed":  # the target whose commit failed stays `failed`
                slot.outcome.status = "rolled_back"
            slot.outcome.log.append("restored to the previous digests")
        else:
            _fail(slot, r.error or "")
    not_restored = [r.target for r in results if not r.ok]
    if not_restored:
        return DeploymentOutcome(status="failed", targets=[s.outcome for s in slots], not_restored=not_restored,
                                 error=f"{summary}; could not restore {', '.join(not_restored)}: "
                                       + "; ".join(r.error for r in results if r.error))
    return DeploymentOutcome(status="rolled_back", targets=[s.outcome for s in slots], error=summary)


def _roll_back(slots: list[_Slot], pool: ThreadPoolExecutor, failures: list[_Slot],
               cleanup_timeout_s: float) -> DeploymentOutcome:
    summary = "; ".join(s.error for s in failures if s.error)
    log.warning("rolling back: %s", summary)
    for slot in slots:
        if slot.error:
            slot.outcome.status = "failed"
            slot.outcome.error = slot.error
        elif slot.prepared is not None:
            slot.outcome.status = "rolled_back"
        else:
            slot.outcome.status = "cancelled"
    # Every target that prepared something, the failed ones' partial work included. Targets whose
    # prepare overran the deadline are discarded by their own callback when it returns.
    to_discard = [s for s in slots if not s.timed_out and s.prepared is not None]
    problems = _map(pool, _discard, to_discard, cleanup_timeout_s, "discard")
    # Prove each host runs what it ran before.
    readable = [s for s in slots if not s.timed_out and "facts_before" in s.outcome.timings_ms
                and not (s.error or "").startswith(f"{s.target.name}: cannot read facts before")]
    read_problems = _map(pool, _read_after, readable, cleanup_timeout_s, "reading facts")
    problems += read_problems
    unreadable = {id(s) for s, _ in read_problems}
    for slot in readable:
        if id(slot) not in unreadable and slot.outcome.digests_after != slot.outcome.digests_before:
            problems.append((slot, f"target {slot.target.name} runs {slot.outcome.digests_after} after the "
                                   f"rollback, ran {slot.outcome.digests_before} before"))
    for slot, problem in problems:
        _fail(slot, problem)
    _finish_logs(slots)
    if problems:
        return DeploymentOutcome(status="failed", targets=[s.outcome for s in slots],
                                 not_restored=sorted({s.target.name for s, _ in problems}),
                                 error=f"{summary}; rollback incomplete: " + "; ".join(p for _, p in problems))
    return DeploymentOutcome(status="rolled_back", targets=[s.outcome for s in slots], error=summary)
