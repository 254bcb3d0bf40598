"""`none` router: no load balancer; the traffic share of a version is the share of targets running it.

A canary step of p % then means: the first ceil(p x N / 100) targets of the environment (estate
order) run the release (promotion/canary.py deploys them); the route's two groups are "the targets
that run the release" and "the others", and every target counts the same. This router only keeps
that bookkeeping honest: `shift` refuses a share the route's targets do not give, `distribution`
is the share of targets per group. It moves nothing and has no health checks of its own (the
target's deploy health check is the one that counts).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from stella_operators.deploy.canary_plan import targets_for
from stella_operators.routing.contract import Route, RouterError
from stella_operators.routing.registry import RouterType


class NoneSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoneRouter:
    name = "none (share of targets)"

    def __init__(self, settings: NoneSettings | None = None):
        self.route: Route | None = None

    def _route(self) -> Route:
        if self.route is None:
            raise RouterError(f"{self.name}: configure a route first")
        return self.route

    def configure(self, route: Route) -> None:
        if len(route.groups) != 2:
            raise RouterError(f"{self.name}: a route of two groups (release, previous), not {sorted(route.groups)}")
        self.route = route

    def validate(self) -> list[str]:
        return [] if self.route is not None else ["no route configured"]

    def shift(self, group: str, percent: int) -> None:
        route = self._route()
        if group not in route.groups or not 0 <= percent <= 100:
            raise RouterError(f"{self.name}: cannot give {percent} % to {group} (groups {sorted(route.groups)})")
        total = len(route.servers())
        want, have = targets_for(percent, total), len(route.groups[group])
        if want != have:
            raise RouterError(f"{self.name}: {percent} % of {total} targets is {want} running {group}, the route "
                              f"has {have}; deploy the targets first (this router moves no traffic)")

    def distribution(self) -> dict[str, int]:
        route = self._route()
        total = len(route.servers())
        return {g: round(100 * len(s) / total) if total else 0 for g, s in route.groups.items()}

    def healthy(self, group: str) -> dict[str, bool]:
        return dict.fromkeys(self._route().groups[group], True)

    def enable(self, group: str) -> None:
        """Nothing to do: a target running the release serves."""

    def disable(self, group: str) -> None:
        """Nothing to do: a target stops serving the release when it is restored."""


ROUTER_TYPE = RouterType(
    name="none", summary="no router: the traffic share is the share of targets running the release",
    tested_against="no peer (bookkeeping only)", settings=NoneSettings, build=NoneRouter)
