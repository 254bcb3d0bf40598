"""Blue-green deployments: two target groups behind a router; the idle one gets the release.

    1. live group = the group the router sends traffic to (the other one is idle; with no traffic
       at all, the first group of `blue_green.groups` is the one deployed to);
    2. deploy the release to the idle group, all or nothing (deploy/engine.py); the live group is
       not touched;
    3. put the idle group's servers in service with no traffic and wait until the router's own
       health checks see every one of them up (`ready_timeout_s`);
    4. switch: 100 % of new requests to the new group in one step; read the distribution back;
    5. the previous group keeps running its release for `switch_back_s`: `switch_back` sends the
       traffic back to it at once; after the window `retire_previous` takes its servers out of
       service and removes its workloads.
A failure in 2 or 3 restores the idle group and never moves traffic; a failure in 4 sends the
traffic back to the previous group and restores the idle one. Pure Python: targets and the router
do the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome, run_deployment
from stella_operators.deploy.rollback import restore_targets
from stella_operators.routing.contract import Route, Router, RouterError, wait_until_healthy
from stella_operators.targets.contract import Target, TargetPlan

log = logging.getLogger(__name__)
_Out = TypeVar("_Out", bound=DeploymentOutcome)   # blue-green and canary outcomes (deploy/canary.py)


@dataclass
class BlueGreenOutcome(DeploymentOutcome):
    group: str | None = None             # the group that received the release (live after a switch)
    previous_group: str | None = None    # the group that served before (kept for the switch-back window)
    switched: bool = False
    distribution: dict[str, int] = field(default_factory=dict)


def live_group(router: Router, route: Route) -> str | None:
    """The group receiving (most of) the traffic now; None when no group receives any."""
    dist = router.distribution()
    best = max(route.groups, key=lambda g: dist.get(g, 0))
    return best if dist.get(best, 0) > 0 else None


def live_and_idle(groups: dict[str, list[tuple[Target, TargetPlan]]], router: Router, route: Route,
                  strategy: str) -> tuple[str | None, str]:
    """Check `groups` against the route, take the route on the router and check it there; then the
    group serving now (None: no group) and the idle one that gets the release."""
    if set(groups) != set(route.groups) or len(groups) != 2:
        raise ValueError(f"{strategy} needs the two route groups {sorted(route.groups)}, got {sorted(groups)}")
    router.configure(route)
    problems = router.validate()
    if problems:
        raise RouterError(f"{router.name}: " + "; ".join(problems))
    live = live_group(router, route)
    return live, next(g for g in route.groups if g != live)


def run_blue_green(groups: dict[str, list[tuple[Target, TargetPlan]]], router: Router, route: Route, *,
                   max_parallel: int = 4, timeout_s: float = 600, cleanup_timeout_s: float = 300,
                   ready_timeout_s: float = 60, poll_s: float = 0.2,
                   sleep: Callable[[float], None] = time.sleep,
                   on_switch: Callable[[str, str | None], None] | None = None) -> BlueGreenOutcome:
    """Steps 1-4 of the module docstring. `groups` maps each route group to its (target, plan) pairs.
    `on_switch(group, previous_group)` is called just before traffic moves (to record it first)."""
    t0 = time.monotonic()
    live, idle = live_and_idle(groups, router, route, "blue-green")
    log.info("blue-green: %s is live, deploying to %s", live or "no group", idle)
    untouched = [TargetOutcome(target=t.name, status="unchanged") for g, ps in groups.items() if g != idle
                 for t, _ in ps]
    pairs = groups[idle]
    outcome = run_deployment(pairs, max_parallel=max_parallel, timeout_s=timeout_s,
                             cleanup_timeout_s=cleanup_timeout_s, finalize=False)

    def result(status: str, error: str | None, *, switched: bool = False) -> BlueGreenOutcome:
        return BlueGreenOutcome(status=status, targets=outcome.targets + untouched,  # type: ignore[arg-type]
                                error=error, deployment_id=outcome.deployment_id, not_restored=outcome.not_restored,
                                duration_ms=int((time.monotonic() - t0) * 1000), group=idle, previous_group=live,
                                switched=switched, distribution=_safe_distribution(router))

    if not outcome.ok:
        return result(outcome.status, outcome.error)
    # 3. in service without traffic, then wait for the router's own health checks.
    try:
        router.enable(idle)
        wait_until_healthy(router, idle, timeout_s=ready_timeout_s, poll_s=poll_s, sleep=sleep)
        # 4. switch in one step and read it back.
        if on_switch is not None:
            on_switch(idle, live)
        router.shift(idle, 100)
        dist = router.distribution()
        if dist.get(idle) != 100:
            raise RouterError(f"{router.name}: after the switch the traffic is {dist}, not 100 % to {idle}")
    except RouterError as exc:
        error = str(exc)
        log.error("blue-green: %s; traffic stays on %s, restoring %s", error, live or "no group", idle)
        if live is not None:
            try:
                router.shift(live, 100)
            except RouterError as back:
                error += f"; switching back to {live} failed too: {back}"
        return _restore_group(result("rolled_back", error), pairs, outcome, cleanup_timeout_s)
    log.info("blue-green: switched to %s; %s kept for the switch-back window", idle, live or "no group")
    return result(outcome.status, None, switched=True)


def _safe_distribution(router: Router) -> dict[str, int]:
    try:
        return router.distribution()
    except RouterError:
        return {}


def _restore_group(out: _Out, pairs: list[tuple[Target, TargetPlan]], deployed: DeploymentOutcome,
                   cleanup_timeout_s: float) -> _Out:
    changed = [(t, p, deployed.target(t.name).digests_before) for t, p in pairs
               if deployed.target(t.name).status == "deployed"]
    results = restore_targets(changed, max_parallel=max(1, len(changed)), timeout_s=cleanup_timeout_s)
    for r in results:
        t = out.target(r.target)
        t.status = "rolled_back" if r.ok else "failed"
        t.error = r.error
        if r.digests_after is not None:
            t.digests_after = r.digests_after
    out.not_restored = [r.target for r in results if not r.ok]
    if out.not_restored:
        out.status = "failed"
    return out


def switch_back(router: Router, route: Route, group: str) -> dict[str, int]:
    """Send all new requests back to `group` (the previous set, still running) in one step."""
    router.configure(route)
    router.enable(group)
    router.shift(group, 100)
    return router.distribution()


@dataclass
class RetireResult:
    group: str
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # target -> why it was left alone
    errors: list[str] = field(default_factory=list)


def retire_previous(pairs: list[tuple[Target, TargetPlan]], router: Router, route: Route, group: str,
                    expected: dict[str, dict[str, str]]) -> RetireResult:
    """After the switch-back window: take `group` out of service and remove its workloads.

    Only while the group still gets no traffic, and only on targets that still run exactly the
    digests they ran when the switch happened (`expected`, from the ledger): a target deployed to
    since then belongs to a newer deployment and is left alone.
    """
    result = RetireResult(group)
    router.configure(route)
    share = router.distribution().get(group, 0)
    if share:
        result.skipped = {t.name: f"group {group} receives {share} % of the traffic" for t, _ in pairs}
        return result
    router.disable(group)
    for target, plan in pairs:
        try:
            facts = target.facts(plan.app)
        except Exception as exc:  # noqa: BLE001 - reported, never fatal: the set is out of service
            result.errors.append(f"{target.name}: cannot read facts: {exc}")
            continue
        running = {c: d for c, d in facts.digests().items() if d}
        if running != expected.get(target.name, {}):
            result.skipped[target.name] = f"runs {running}, not {expected.get(target.name, {})} any more"
            continue
        if not running:
            continue
        # The workloads were started by the deployment named in their sticker: undo exactly that one.
        owner = facts.sticker.deployment_id if facts.sticker is not None else plan.deployment_id
        try:
            target.restore(replace(plan, deployment_id=owner), {})
            left = {c: d for c, d in target.facts(plan.app).digests().items() if d}
        except Exception as exc:  # noqa: BLE001
            result.errors.append(f"{target.name}: {exc}")
            continue
        if left:
            result.errors.append(f"{target.name}: still runs {left} after removing deployment {owner}'s workloads")
        else:
            result.removed.append(target.name)
    return result
