"""The nginx upstream file the `nginx` router owns: pure rendering, parsing and weight arithmetic.

One `server` line per server, its state in a trailing comment (nginx refuses `weight=0`, so a
server without a traffic share is written `down`, and the comment keeps apart "no share" and
"maintenance"):

    upstream shop_web {
        server 10.0.0.11:8080 weight=9;  # stella: name=blue-1 weight=9
        server 10.0.0.21:8080 weight=1 down;  # stella: name=green-1 weight=0
        server 10.0.0.22:8080 weight=3 down;  # stella: name=green-2 weight=3 maint
    }

A line whose directive does not match its comment was edited by hand: parsing refuses it (the
router would otherwise report a distribution nginx does not have).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from stella_operators.routing.contract import Route

HEADER = ("# Written by stella-operators (router nginx). Do not edit: every traffic shift rewrites this file\n"
          "# (the version before the last shift is kept next to it as <this file>.previous).\n")
_UPSTREAM = re.compile(r"^\s*upstream\s+(\S+)\s*\{\s*$")
_SERVER = re.compile(r"^\s*server\s+(?P<directive>[^;#]+);\s*#\s*stella:\s*(?P<meta>.*?)\s*$")


class UpstreamError(ValueError):
    """The file is not one this router wrote (or was edited by hand); the message says where."""


@dataclass(frozen=True)
class ServerState:
    name: str
    address: str       # host:port as nginx resolves it
    weight: int = 0    # 0: no traffic share
    maint: bool = False  # taken out of service (disable); keeps its weight for enable

    @property
    def serves(self) -> bool:
        """nginx sends it new requests (not `down`)."""
        return self.weight > 0 and not self.maint

    def line(self) -> str:
        params = f"weight={max(self.weight, 1)}" + ("" if self.serves else " down")
        meta = f"name={self.name} weight={self.weight}" + (" maint" if self.maint else "")
        return f"    server {self.address} {params};  # stella: {meta}"


def render_upstream(backend: str, servers: list[ServerState]) -> str:
    return HEADER + f"upstream {backend} {{\n" + "".join(s.line() + "\n" for s in servers) + "}\n"


def parse_upstream(text: str, backend: str, where: str) -> dict[str, ServerState]:
    """Server name -> state, from a file `render_upstream` wrote; UpstreamError naming the line."""
    out: dict[str, ServerState] = {}
    inside = found = False
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not inside:
            m = _UPSTREAM.match(line)
            if m is None or m.group(1) != backend:
                raise UpstreamError(f"{where}:{n}: expected `upstream {backend} {{`, found {line!r}")
            inside = found = True
            continue
        if line == "}":
            inside = False
            continue
        m = _SERVER.match(line)
        if m is None:
            raise UpstreamError(f"{where}:{n}: not a server line written by stella: {line!r}")
        state = _from_meta(m.group("meta"), m.group("directive").split()[0], f"{where}:{n}")
        if state.line().strip() != line:
            raise UpstreamError(f"{where}:{n}: the nginx directive does not match its `# stella:` comment "
                                f"(edited by hand?): {line!r}; expected {state.line().strip()!r}")
        if state.name in out:
            raise UpstreamError(f"{where}:{n}: server {state.name} appears twice")
        out[state.name] = state
    if not found or inside:
        raise UpstreamError(f"{where}: no complete `upstream {backend} {{ ... }}` block")
    return out


def _from_meta(meta: str, address: str, where: str) -> ServerState:
    fields: dict[str, str] = {}
    flags: set[str] = set()
    for token in meta.split():
        key, eq, value = token.partition("=")
        if eq:
            fields[key] = value
        else:
            flags.add(key)
    if "name" not in fields or not fields.get("weight", "").isdigit() or flags - {"maint"}:
        raise UpstreamError(f"{where}: unreadable `# stella:` comment {meta!r}")
    return ServerState(name=fields["name"], address=address, weight=int(fields["weight"]), maint="maint" in flags)


def split_weights(route: Route, group: str, percent: int, max_weight: int) -> dict[str, int]:
    """Per-server weights giving `group` `percent` % of new requests and the other group the rest
    (0 = no share). Exact when the reduced weights fit under `max_weight`, else rounded."""
    other = next(g for g in route.groups if g != group)
    n_to, n_other = len(route.groups[group]), len(route.groups[other])
    # group gets percent * n_other per server, other (100 - percent) * n_to: shares are then exact
    w_to, w_other = percent * n_other, (100 - percent) * n_to
    g = math.gcd(w_to, w_other) or 1
    w_to, w_other = w_to // g, w_other // g
    top = max(w_to, w_other)
    if top > max_weight:
        w_to = max(1, round(w_to * max_weight / top)) if w_to else 0
        w_other = max(1, round(w_other * max_weight / top)) if w_other else 0
    return {**{s: w_other for s in route.groups[other]}, **{s: w_to for s in route.groups[group]}}


def shares(route: Route, servers: dict[str, ServerState]) -> dict[str, int]:
    """Each group's share of new requests (percent) under nginx's weighted round robin: the sum of
    its serving servers' weights over the weights of every serving server of the upstream (one
    outside the route takes its share too)."""
    totals = {g: sum(servers[s].weight for s in ss if s in servers and servers[s].serves)
              for g, ss in route.groups.items()}
    total = sum(s.weight for s in servers.values() if s.serves)
    return {g: round(100 * w / total) if total else 0 for g, w in totals.items()}
