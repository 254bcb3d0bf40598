"""The router interface: what a strategy needs from the load balancer in front of its targets.

A *route* maps target groups (e.g. blue and green) to the router's servers (one per target). The
strategy moves traffic between groups by percentage and reads back what the router really does;
nothing here reloads a router's configuration (HAProxy: runtime API; nginx, later: rewrite the
upstream, `nginx -t`, reload).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class RouterError(RuntimeError):
    """The router refused or could not be reached; the message names the router and the command."""


@dataclass(frozen=True)
class Route:
    """Which servers of `backend` carry which group's traffic (server names, usually target names)."""

    backend: str
    groups: dict[str, tuple[str, ...]]

    def group_of(self, server: str) -> str | None:
        return next((g for g, servers in self.groups.items() if server in servers), None)

    def servers(self) -> list[str]:
        return [s for servers in self.groups.values() for s in servers]


class Router(Protocol):
    name: str  # for messages: type and address, e.g. "haproxy (/run/haproxy.sock)"

    def configure(self, route: Route) -> None:
        """Take `route` as the one to act on; raise RouterError when the router lacks its backend
        or any of its servers (nothing is changed)."""
        ...

    def validate(self) -> list[str]:
        """Problems that would make a switch unsafe (unreachable, missing servers); empty when fine."""
        ...

    def shift(self, group: str, percent: int) -> None:
        """Send `percent` (0..100) of new requests to `group` and the rest to the other group of a
        two-group route. Requests in flight finish where they started."""
        ...

    def distribution(self) -> dict[str, int]:
        """Each group's share of new requests now, in percent, read back from the router."""
        ...

    def healthy(self, group: str) -> dict[str, bool]:
        """Server -> the router's own health check sees it up and it is not in maintenance."""
        ...

    def enable(self, group: str) -> None:
        """Put the group's servers in service (health-checked) without giving them traffic yet."""
        ...

    def disable(self, group: str) -> None:
        """Take the group's servers out of service (maintenance): no traffic, no health checks."""
        ...


def wait_until_healthy(router: Router, group: str, *, timeout_s: float, poll_s: float = 0.2,
                       sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until the router's own health checks see every server of `group` up; RouterError naming
    the ones still down after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        health = router.healthy(group)
        if all(health.values()):
            return
        if time.monotonic() >= deadline:
            down = [s for s, ok in health.items() if not ok]
            raise RouterError(f"{router.name}: {', '.join(down)} not seen healthy within {timeout_s:.0f} s")
        sleep(poll_s)
