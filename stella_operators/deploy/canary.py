"""Canary deployments through a router: the release goes to the idle group, traffic moves in steps.

    begin   the live group keeps serving; the idle group gets the release all or nothing
            (deploy/engine.py, finalize later), is put in service with 0 % of the traffic, and the
            router's own health checks must see all of it up (`ready_timeout_s`);
    step    `shift_to`: the step's share of new requests to the new group, read back from the
            router and checked (a router that does not do what it was told stops the canary);
    abort   `abort_traffic`: 100 % back to the previous group FIRST (0 % on the new version), the
            new group out of service; the caller then restores its previous digests;
    finish  the last step is 100 %: the new group is live; the previous one keeps running for the
            switch-back window and is retired after it (deploy/blue_green.retire_previous).
Router `none` has no groups: a step deploys the step's share of the targets instead
(`targets_at`). Pure Python: targets and the router do the I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stella_operators.deploy.blue_green import _restore_group, _safe_distribution, live_and_idle
from stella_operators.deploy.canary_plan import targets_for
from stella_operators.deploy.engine import DeploymentOutcome, TargetOutcome, run_deployment
from stella_operators.routing.contract import Route, Router, RouterError, wait_until_healthy
from stella_operators.targets.contract import Target, TargetPlan

log = logging.getLogger(__name__)
SHARE_TOLERANCE = 1  # percent: weights are integers (HAProxy: 0..256), a share is read back rounded


class CanaryError(RuntimeError):
    """A step could not be taken as configured; traffic must go back to the previous group."""


@dataclass
class CanaryOutcome(DeploymentOutcome):
    group: str | None = None             # the group that received the release
    previous_group: str | None = None    # the group that serves until the canary reaches 100 %
    distribution: dict[str, int] = field(default_factory=dict)


def begin_canary(groups: dict[str, list[tuple[Target, TargetPlan]]], router: Router, route: Route, *,
                 max_parallel: int = 4, timeout_s: float = 600, cleanup_timeout_s: float = 300,
                 ready_timeout_s: float = 60, poll_s: float = 0.2, sleep: Callable[[float], None] = time.sleep,
                 on_begin: Callable[[str, str | None], None] | None = None) -> CanaryOutcome:
    """Deploy to the idle group and make it ready with 0 % of the traffic. `on_begin(group,
    previous_group)` runs before anything changes (to record where traffic must go back to)."""
    t0 = time.monotonic()
    live, idle = live_and_idle(groups, router, route, "a canary")
    share = router.distribution().get(idle, 0)
    if live is not None and share:
        # Two groups both serving: an unfinished canary. Deploying over one would cut its traffic.
        raise CanaryError(f"{router.name}: group {idle} still receives {share} % of the traffic; send it back to "
                          f"{live} (a rollback of the last promotion) before starting a canary")
    if on_begin is not None:
        on_begin(idle, live)
    log.info("canary: %s serves, deploying to %s", live or "no group", idle)
    untouched = [TargetOutcome(target=t.name, status="unchanged") for g, ps in groups.items() if g != idle
                 for t, _ in ps]
    pairs = groups[idle]
    outcome = run_deployment(pairs, max_parallel=max_parallel, timeout_s=timeout_s,
                             cleanup_timeout_s=cleanup_timeout_s, finalize=False)

    def result(status: str, error: str | None) -> CanaryOutcome:
        return CanaryOutcome(status=status, targets=outcome.targets + untouched,  # type: ignore[arg-type]
                             error=error, deployment_id=outcome.deployment_id, not_restored=outcome.not_restored,
                             duration_ms=int((time.monotonic() - t0) * 1000), group=idle, previous_group=live,
                             distribution=_safe_distribution(router))

    if not outcome.ok:
        return result(outcome.status, outcome.error)
    try:
        if live is not None:
            router.shift(idle, 0)  # weight 0 before it enters service: no request before step 1
        router.enable(idle)
        wait_until_healthy(router, idle, timeout_s=ready_timeout_s, poll_s=poll_s, sleep=sleep)
    except RouterError as exc:
        log.error("canary: %s; traffic stays on %s, restoring %s", exc, live or "no group", idle)
        try:
            router.disable(idle)
        except RouterError as off:
            exc = RouterError(f"{exc}; taking {idle} out of service failed too: {off}")
        return _restore_group(result("rolled_back", str(exc)), pairs, outcome, cleanup_timeout_s)
    return result(outcome.status, None)


def shift_to(router: Router, route: Route, group: str, percent: int, previous_group: str | None) -> dict[str, int]:
    """Give `group` `percent` of new requests and check what the router reports back. With no
    previous group (nothing served before) there is nothing to share with: 100 % at once."""
    router.configure(route)
    share = percent if previous_group is not None else 100
    router.shift(group, share)
    dist = router.distribution()
    if abs(dist.get(group, 0) - share) > SHARE_TOLERANCE:
        raise CanaryError(f"{router.name}: asked for {share} % to {group}, the router reports {dist}")
    return dist


def abort_traffic(router: Router, route: Route, group: str, previous_group: str | None) -> dict[str, int]:
    """0 % on the new version now: everything back to the previous group, the new group out of service."""
    router.configure(route)
    if previous_group is not None:
        router.enable(previous_group)
        router.shift(previous_group, 100)
    router.disable(group)
    return router.distribution()


def targets_at(names: list[str], percent: int) -> list[str]:
    """Router `none`: the targets (estate order) that run the release at `percent`."""
    return names[:targets_for(percent, len(names))]


def none_route(names: list[str], updated: list[str]) -> Route:
    """Router `none`: group `release` = the targets running the release, `previous` = the others."""
    return Route(backend="none", groups={"release": tuple(n for n in names if n in updated),
                                         "previous": tuple(n for n in names if n not in updated)})
