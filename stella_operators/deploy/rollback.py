"""Undo or settle a deployment on many targets from their own state: restore and finalize.

Used by the engine (a commit or its check failed after some hosts switched), by verification (the
release does not run as planned) and by recovery (a worker died mid-deployment and only the
ledger's record of the previous digests is left). Pure Python: targets do the I/O.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from stella_operators.targets.contract import Target, TargetPlan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestoreResult:
    target: str
    error: str | None = None       # None: the target runs its previous digests again
    digests_after: dict[str, str | None] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _err(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _restore_one(target: Target, plan: TargetPlan, previous: dict[str, str | None]) -> RestoreResult:
    try:
        target.restore(plan, previous)
    except Exception as exc:  # noqa: BLE001 - any failure names the target and is reported, never raised
        text = _err(exc)
        return RestoreResult(target.name, text if text.startswith(target.name) else f"{target.name}: {text}")
    try:
        after = target.facts(plan.app).digests()
    except Exception as exc:  # noqa: BLE001
        return RestoreResult(target.name, f"{target.name}: cannot read facts after the rollback: {_err(exc)}")
    want = {c: d for c, d in previous.items() if d is not None}
    keys = set(want) | {s.component.name for s in plan.components}
    got = {c: after[c] for c in keys if after.get(c) is not None}
    if got != want:
        return RestoreResult(target.name, f"{target.name}: runs {got} after the rollback, ran {want} before", after)
    return RestoreResult(target.name, None, after)


def restore_targets(items: list[tuple[Target, TargetPlan, dict[str, str | None]]], *, max_parallel: int = 4,
                    timeout_s: float = 300) -> list[RestoreResult]:
    """Restore every (target, plan, previous digests) in parallel and prove it from facts."""
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(items))), thread_name_prefix="stella-restore")
    try:
        futures = [(pool.submit(_restore_one, t, p, prev), t) for t, p, prev in items]
        wait([f for f, _ in futures], timeout=timeout_s)
        results = []
        for fut, target in futures:
            if not fut.done():
                results.append(RestoreResult(target.name, f"{target.name}: rollback did not finish within "
                                                          f"{timeout_s:.0f} s"))
            else:
                results.append(fut.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for r in results:
        if r.ok:
            log.info("%s: restored to its previous digests", r.target)
        else:
            log.error("rollback incomplete: %s", r.error)
    return results


def finalize_targets(pairs: list[tuple[Target, TargetPlan]]) -> list[str]:
    """Remove what commit kept for a rollback, now that the deployment is verified. Returns problems
    (left-over stopped workloads are untidy, not wrong: they are reported, never fatal)."""
    problems = []
    for target, plan in pairs:
        try:
            target.finalize(plan)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{target.name}: {_err(exc)}")
            log.warning("finalize: %s: %s", target.name, _err(exc))
    return problems
