"""`haproxy` router: HAProxy's runtime API over its stats socket (no reload, no config rewrite).

The HAProxy configuration (owned by the operators of the load balancer) declares the backend and
one `server` per target, with `check` so that HAProxy health-checks them, e.g.

    global
        stats socket /run/haproxy/admin.sock mode 600 level admin
    backend shop_web
        balance roundrobin
        server web-blue-1  10.0.0.11:8080 check inter 500ms
        server web-green-1 10.0.0.21:8080 check inter 500ms weight 0

Commands used: `show servers state BACKEND` (weights, operational and admin state), `set server
BACKEND/SERVER weight N`, `set server BACKEND/SERVER state ready|maint`. A weight change applies
to new requests at once; requests in flight finish on the server that took them.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from stella_operators.routing.contract import Route, RouterError
from stella_operators.routing.registry import RouterType

MAX_WEIGHT = 256
_OP_RUNNING = "2"
_ADMIN_MAINT = 0x01 | 0x02 | 0x20  # forced, inherited, resolution maintenance


class HAProxySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    socket: str = Field(description="path of HAProxy's stats socket (needs `level admin`)")
    backend: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="the backend in front of the targets")
    servers: dict[str, str] = Field(
        default_factory=dict, description="target name -> server name in the backend (default: the target name)")
    timeout_s: float = Field(5.0, gt=0, le=60, description="per runtime API command")


@dataclass
class ServerState:
    name: str
    weight: int
    up: bool          # HAProxy's operational state is RUNNING (its checks pass)
    maint: bool       # administratively in maintenance


class HAProxyRouter:
    def __init__(self, settings: HAProxySettings):
        self.settings = settings
        self.name = f"haproxy ({settings.socket}, backend {settings.backend})"
        self.route: Route | None = None

    # -- the runtime API -----------------------------------------------------------------------
    def command(self, line: str) -> str:
        """One command per connection (HAProxy's non-interactive mode); returns the answer."""
        if "\n" in line or ";" in line:
            raise RouterError(f"{self.name}: refusing a command with a line break or ';': {line!r}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.settings.timeout_s)
                sock.connect(self.settings.socket)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise RouterError(f"{self.name}: `{line}` failed: {exc}") from None
        return b"".join(chunks).decode(errors="replace")

    def _set(self, server: str, what: str) -> None:
        answer = self.command(f"set server {self.settings.backend}/{server} {what}").strip()
        if answer:  # success is an empty answer; anything else is HAProxy's refusal
            raise RouterError(f"{self.name}: `set server {self.settings.backend}/{server} {what}`: {answer}")

    def servers(self) -> dict[str, ServerState]:
        answer = self.command(f"show servers state {self.settings.backend}")
        lines = answer.strip().splitlines()
        if not lines or not lines[0].strip().isdigit():
            raise RouterError(f"{self.name}: cannot read the servers of backend {self.settings.backend}: "
                              f"{answer.strip()[:200]}")
        header = lines[1].lstrip("# ").split() if len(lines) > 1 and lines[1].startswith("#") else []
        if "srv_name" not in header:
            raise RouterError(f"{self.name}: unexpected `show servers state` answer: {answer.strip()[:200]}")
        col = {name: i for i, name in enumerate(header)}
        out = {}
        for line in lines[2:]:
            f = line.split()
            if len(f) < len(col) - 5 or f[col["be_name"]] != self.settings.backend:
                continue
            out[f[col["srv_name"]]] = ServerState(
                name=f[col["srv_name"]], weight=int(f[col["srv_uweight"]]), up=f[col["srv_op_state"]] == _OP_RUNNING,
                maint=bool(int(f[col["srv_admin_state"]]) & _ADMIN_MAINT))
        return out

    # -- the Router interface --------------------------------------------------------------------
    def server_of(self, target: str) -> str:
        return self.settings.servers.get(target, target)

    def configure(self, route: Route) -> None:
        if route.backend != self.settings.backend:
            raise RouterError(f"{self.name}: the route is for backend {route.backend}")
        self.route = route
        problems = self.validate()
        if problems:
            self.route = None
            raise RouterError(f"{self.name}: " + "; ".join(problems))

    def _route(self) -> Route:
        if self.route is None:
            raise RouterError(f"{self.name}: configure a route first")
        return self.route

    def validate(self) -> list[str]:
        route = self._route()
        try:
            have = self.servers()
        except RouterError as exc:
            return [str(exc)]
        missing = [s for s in route.servers() if s not in have]
        if missing:
            return [f"backend {self.settings.backend} has no server {', '.join(missing)} (declare one `server` "
                    f"line per target in the HAProxy configuration; have: {', '.join(sorted(have)) or 'none'})"]
        return []

    def weights_for(self, group: str, percent: int) -> dict[str, int]:
        """Per-server weights that give `group` `percent` of the traffic and the other group the rest."""
        route = self._route()
        if len(route.groups) != 2 or group not in route.groups:
            raise RouterError(f"{self.name}: shifting needs a route of two groups including {group}")
        if not 0 <= percent <= 100:
            raise RouterError(f"{self.name}: a traffic share is 0..100, not {percent}")
        other = next(g for g in route.groups if g != group)
        n_to, n_other = len(route.groups[group]), len(route.groups[other])
        # Exact when it fits: group gets percent * n_other per server, other (100 - percent) * n_to.
        w_to, w_other = percent * n_other, (100 - percent) * n_to
        g = math.gcd(w_to, w_other) or 1
        w_to, w_other = w_to // g, w_other // g
        top = max(w_to, w_other)
        if top > MAX_WEIGHT:  # scale down; the split is then exact to within rounding
            w_to = max(1, round(w_to * MAX_WEIGHT / top)) if w_to else 0
            w_other = max(1, round(w_other * MAX_WEIGHT / top)) if w_other else 0
        return {**{s: w_other for s in route.groups[other]}, **{s: w_to for s in route.groups[group]}}

    def shift(self, group: str, percent: int) -> None:
        weights = self.weights_for(group, percent)
        route = self._route()
        # Raise the receiving side first, then lower the other: never a moment with no weight at all.
        order = sorted(weights, key=lambda s: route.group_of(s) != group)
        for server in order:
            self._set(server, f"weight {weights[server]}")

    def distribution(self) -> dict[str, int]:
        route = self._route()
        have = self.servers()
        totals = {g: sum(have[s].weight for s in servers if s in have and not have[s].maint)
                  for g, servers in route.groups.items()}
        total = sum(totals.values())
        if total == 0:
            return {g: 0 for g in route.groups}
        return {g: round(100 * w / total) for g, w in totals.items()}

    def healthy(self, group: str) -> dict[str, bool]:
        have = self.servers()
        return {s: s in have and have[s].up and not have[s].maint for s in self._route().groups[group]}

    def enable(self, group: str) -> None:
        for server in self._route().groups[group]:
            self._set(server, "state ready")

    def disable(self, group: str) -> None:
        for server in self._route().groups[group]:
            self._set(server, "state maint")


ROUTER_TYPE = RouterType(
    name="haproxy", summary="HAProxy over its runtime API (stats socket): weights, ready / maintenance, no reload",
    tested_against="real HAProxy 2.6 (Debian) with real HTTP backends", settings=HAProxySettings,
    build=HAProxyRouter)
